import type { Encoder } from '../encoder/encoder';
import { QUERY_TOWER_PRECISION } from '../encoder/precision';
import { stampPrecision } from '../index/manifest';
import { WorkspaceIndex } from '../index/workspace-index';
import { requireManifest } from './index-dir';
import { encoderFromOptions, type ModelCliOptions } from './model-options';
import { searchModels } from './search-models';

export interface QueryIndex {
  index: WorkspaceIndex;
  /** The encoder that embeds queries (a query tower, or the index's own); undefined when lexical only. */
  queryEncoder?: Encoder;
  /** Opens the directory's live generation again (after another process updated it), with the same encoders. */
  reopen(): Promise<void>;
  close(): Promise<void>;
}

/**
 * Opens an index read-only for queries, with the encoders searchModels picks (the index's own, or a query tower
 * trained against its vectors). `lexicalOnly` loads no encoder. Unless `opts.precision` says otherwise, the index's
 * encoder runs at the precision of the stored vectors and a query tower at the fp32 of its training graph.
 */
export async function openQueryIndex(indexDir: string, opts: ModelCliOptions, lexicalOnly = false): Promise<QueryIndex> {
  const manifest = await requireManifest(indexDir);
  const { model, queryModel } = lexicalOnly ? {} : searchModels(manifest, opts.model);
  const encoders: Encoder[] = [];
  try {
    const precision = opts.precision ?? (manifest.encoder ? stampPrecision(manifest.encoder) : undefined);
    const encoder = await encoderFromOptions({ ...opts, model, precision });
    if (encoder) encoders.push(encoder);
    const queryEncoder = await encoderFromOptions({ ...opts, model: queryModel, precision: opts.precision ?? QUERY_TOWER_PRECISION });
    if (queryEncoder) encoders.push(queryEncoder);
    const open = () => WorkspaceIndex.open(indexDir, { encoder, queryEncoder, encoderSpec: model, readOnly: true });
    const handle: QueryIndex = {
      index: await open(),
      queryEncoder: queryEncoder ?? encoder,
      reopen: async () => {
        const previous = handle.index;
        handle.index = await open();
        await previous.close();
      },
      close: async () => {
        await handle.index.close();
        for (const e of encoders) await e.dispose();
      },
    };
    return handle;
  } catch (err) {
    for (const e of encoders) await e.dispose();
    throw err;
  }
}
