import type { Encoder } from '../encoder/encoder';
import { WorkspaceIndex } from '../index/workspace-index';
import { isQueryTowerFor } from '../lsr/lsr-trainer';
import { encoderFromOptions, type ModelCliOptions } from './model-options';

export interface QueryIndex {
  index: WorkspaceIndex;
  /** Opens the directory's live generation again (after another process updated it), with the same encoders. */
  reopen(): Promise<void>;
  close(): Promise<void>;
}

/**
 * Opens an index read-only for queries. Dense queries must be embedded by the encoder the index was built with —
 * or by a query tower trained against its vectors (`train --mode query-tower`), which embeds queries while the
 * stored vectors stay. `lexicalOnly` loads no encoder.
 */
export async function openQueryIndex(indexDir: string, opts: ModelCliOptions, lexicalOnly = false): Promise<QueryIndex> {
  const manifest = await WorkspaceIndex.readManifest(indexDir).catch((err: Error) => {
    throw new Error(`the index at ${indexDir} could not be read (${err.message}); run index again`);
  });
  if (!manifest) throw new Error(`no index at ${indexDir}: run \`replug-code index <folder> --index-dir ${indexDir}\` first`);
  const wanted = lexicalOnly ? undefined : (opts.model ?? manifest.encoder?.model);
  const queryTower = wanted !== undefined && manifest.encoder !== undefined && isQueryTowerFor(wanted, manifest.encoder.fingerprint);
  const model = queryTower ? manifest.encoder!.model : wanted;
  const encoders: Encoder[] = [];
  try {
    const encoder = await encoderFromOptions({ ...opts, model });
    if (encoder) encoders.push(encoder);
    const queryEncoder = queryTower ? await encoderFromOptions({ ...opts, model: wanted }) : undefined;
    if (queryEncoder) encoders.push(queryEncoder);
    const open = () => WorkspaceIndex.open(indexDir, { encoder, queryEncoder, encoderSpec: model, readOnly: true });
    const handle: QueryIndex = {
      index: await open(),
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
