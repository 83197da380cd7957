import type { Encoder } from '../encoder/encoder';
import { QUERY_TOWER_PRECISION, type Precision } from '../encoder/precision';
import { stampPrecision, type IndexManifest } from '../index/manifest';
import { WorkspaceIndex } from '../index/workspace-index';
import { requireManifest } from '../cli/index-dir';
import { searchModels, type SearchModels } from '../cli/search-models';
import { spanExclusion, toWireHit } from '../server/index-service';
import { assertQueryTowerFor } from '../server/model-catalog';
import type { SearchParams, WireHit } from '../server/protocol';
import { resolveAgainst } from './retrieval-tools';

export interface IndexSearcherOptions {
  indexDir: string;
  /** Encoder of the index's vectors; default: the one the index was built with. May name a query tower, as for `search`. */
  model?: string;
  /** A query tower trained against the index's vectors; embeds the queries. */
  queryModel?: string;
  /** Loads `model` at `precision`: the stored vectors' for the index's encoder, fp32 for a query tower. */
  loadEncoder(model: string, precision: Precision): Promise<Encoder>;
}

interface LoadedEncoders {
  key: string;
  encoder?: Encoder;
  queryEncoder?: Encoder;
  model?: string;
}

/**
 * Searches an index directory read-only for a long-lived process (the MCP server). It opens the index and loads the
 * encoders on the first search, not at start (an agent client expects a quick handshake), keeps them, and reopens the
 * index when another process — the editor's sidecar, `replug-code index` — has saved a newer generation, so answers
 * follow re-indexing without a restart. Never takes the writer lock.
 */
export class IndexSearcher {
  private opened: { index: WorkspaceIndex; updatedAt: string | undefined } | undefined;
  private encoders: LoadedEncoders | undefined;
  /** Refreshes run one at a time; searches on the index they return run concurrently. */
  private refreshing: Promise<unknown> = Promise.resolve();

  constructor(private readonly opts: IndexSearcherOptions) {}

  /** A relative `excludePath` is taken from the current folder, else from the first indexed root that has it. */
  async search(params: SearchParams): Promise<WireHit[]> {
    const index = await this.current();
    const roots = index.storedManifest()?.roots ?? [];
    const excludePath = params.excludePath && resolveAgainst(params.excludePath, [process.cwd(), ...roots]);
    const hits = await index.search(params.query, { k: params.k, mode: params.mode, exclude: spanExclusion({ ...params, excludePath }) });
    return hits.map(toWireHit);
  }

  async close(): Promise<void> {
    await this.refreshing;
    await this.opened?.index.close();
    this.opened = undefined;
    await this.disposeEncoders();
  }

  private current(): Promise<WorkspaceIndex> {
    const next = this.refreshing.then(() => this.refresh());
    this.refreshing = next.catch(() => undefined);
    return next;
  }

  private async refresh(): Promise<WorkspaceIndex> {
    const { indexDir } = this.opts;
    const manifest = await requireManifest(indexDir);
    if (manifest.passages === 0) throw new Error(`the index at ${indexDir} holds no passages: index a folder with source files into it`);
    if (this.opened && this.opened.updatedAt === manifest.updatedAt) return this.opened.index;
    const { encoder, queryEncoder, model } = await this.encodersFor(manifest);
    const index = await WorkspaceIndex.open(indexDir, { encoder, queryEncoder, encoderSpec: model, readOnly: true });
    if (!index.storedManifest()) throw new Error(`the index at ${indexDir} could not be read; run index again`);
    // A read-only index holds no lock and has nothing to save: closing the old one cannot disturb a search on it.
    await this.opened?.index.close();
    this.opened = { index, updatedAt: index.storedManifest()?.updatedAt };
    return index;
  }

  /** The encoders for this generation: the loaded ones unless a re-index changed which models it needs. */
  private async encodersFor(manifest: IndexManifest): Promise<LoadedEncoders> {
    const { model, queryModel } = await this.models(manifest);
    const precision = manifest.encoder ? stampPrecision(manifest.encoder) : 'fp32';
    const key = `${model ?? ''}\n${precision}\n${queryModel ?? ''}`;
    if (this.encoders?.key === key) return this.encoders;
    await this.disposeEncoders();
    const encoder = model ? await this.load(model, precision) : undefined;
    try {
      const queryEncoder = queryModel ? await this.load(queryModel, QUERY_TOWER_PRECISION) : undefined;
      this.encoders = { key, encoder, queryEncoder, model };
      return this.encoders;
    } catch (err) {
      await encoder?.dispose();
      throw err;
    }
  }

  private async models(manifest: IndexManifest): Promise<SearchModels> {
    const { indexDir, model, queryModel } = this.opts;
    if (!queryModel) return searchModels(manifest, model);
    await assertQueryTowerFor(queryModel, indexDir);
    return { model: model ?? manifest.encoder?.model, queryModel };
  }

  private async load(model: string, precision: Precision): Promise<Encoder> {
    try {
      return await this.opts.loadEncoder(model, precision);
    } catch (err) {
      throw new Error(`cannot load the encoder ${model}: ${err instanceof Error ? err.message : String(err)}`);
    }
  }

  private async disposeEncoders(): Promise<void> {
    const old = this.encoders;
    this.encoders = undefined;
    await old?.encoder?.dispose();
    await old?.queryEncoder?.dispose();
  }
}
