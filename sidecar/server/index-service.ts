import { rm } from 'node:fs/promises';
import {
  WorkspaceIndex,
  type IndexOptions,
  type IndexProgress,
  type SearchHit,
} from '../index/workspace-index';
import type { Passage } from '../corpus/passage';
import type { Encoder } from '../encoder/encoder';
import type { IndexResult, IndexStatusResult, SearchParams, StatusParams, WireHit } from './protocol';

export interface IndexServiceOptions {
  indexDir: string;
  /** Engine options other than the encoder. */
  indexOptions: Omit<IndexOptions, 'encoder'>;
  /** Loads the sentence encoder on first use (slow: model load and ORT session); absent = lexical only. */
  loadEncoder?: () => Promise<Encoder>;
  /** Called whenever health, busy state or index size changes. */
  onStatus(status: StatusParams): void;
}

export interface IndexJobOptions {
  rebuild?: boolean;
  signal?: AbortSignal;
  onProgress?: (p: IndexProgress) => void;
}

/**
 * Owns the one WorkspaceIndex of a sidecar. Writes (index jobs, single-file updates) run one after another on a
 * queue because the engine must never run two updates at once; searches skip the queue, so they interleave with a
 * long job between its batches instead of waiting for it to end.
 */
export class IndexService {
  private opened: Promise<WorkspaceIndex> | undefined;
  private encoder: Promise<Encoder> | undefined;
  /** A tuned query tower that embeds search queries instead of the index's encoder. */
  private queryEncoder: { model: string; encoder: Encoder } | undefined;
  private writes: Promise<unknown> = Promise.resolve();
  private runningJobs = 0;
  private lastError: string | undefined;
  /** Aborts whatever job runs when the sidecar shuts down. */
  private readonly closing = new AbortController();

  constructor(private readonly opts: IndexServiceOptions) {}

  async status(): Promise<IndexStatusResult> {
    const s = (await this.open()).status();
    return { ...s, busy: this.runningJobs > 0 };
  }

  index(roots: string[], job: IndexJobOptions = {}): Promise<IndexResult> {
    return this.enqueue(async () => {
      this.runningJobs++;
      this.emitStatus();
      const signal = job.signal ? AbortSignal.any([job.signal, this.closing.signal]) : this.closing.signal;
      try {
        if (job.rebuild) await this.drop();
        const index = await this.open();
        const report = await index.update(roots, { signal, onProgress: job.onProgress });
        this.lastError = undefined;
        // The per-file skip list can be long; the counts per reason are what the editor shows.
        const { skippedFiles: _skippedFiles, ...counts } = report;
        return { cancelled: false as const, ...counts };
      } catch (err) {
        if (signal.aborted) return { cancelled: true as const };
        this.lastError = errorMessage(err);
        throw err;
      } finally {
        this.runningJobs--;
        this.emitStatus();
      }
    });
  }

  updateFile(path: string): Promise<void> {
    return this.enqueue(async () => (await this.open()).updateFile(path)).finally(() => this.emitStatus());
  }

  removeFile(path: string): Promise<void> {
    return this.enqueue(async () => (await this.open()).removeFile(path)).finally(() => this.emitStatus());
  }

  async search(params: SearchParams): Promise<WireHit[]> {
    const query = params.query.trim();
    if (!query) return [];
    const hits = await (await this.open()).search(query, { k: params.k, mode: params.mode, exclude: spanExclusion(params) });
    return hits.map(toWireHit);
  }

  /** The index's own encoder (loaded on first use); undefined for a lexical-only sidecar. */
  baseEncoder(): Promise<Encoder | undefined> {
    if (this.opts.loadEncoder) this.encoder ??= this.opts.loadEncoder();
    return this.encoder ?? Promise.resolve(undefined);
  }

  get queryModel(): string | undefined {
    return this.queryEncoder?.model;
  }

  /**
   * Makes searches embed queries with `model` (a query tower trained against this index's vectors), or with the
   * index's own encoder when absent. Runs on the write queue because the index is reopened with the new encoder;
   * a model that fails to load leaves the current one in place.
   */
  useQueryModel(model: string | undefined, load: (model: string) => Promise<Encoder>): Promise<void> {
    return this.enqueue(async () => {
      const next = model ? { model, encoder: await load(model) } : undefined;
      const previous = this.queryEncoder;
      await this.drop(false);
      this.queryEncoder = next;
      await previous?.encoder.dispose();
      await this.open();
    });
  }

  async close(): Promise<void> {
    // Let a running job observe the abort and finish its batch before the index is closed under it.
    this.closing.abort();
    await this.writes.catch(() => undefined);
    await this.drop(false);
    await (await this.encoder?.catch(() => undefined))?.dispose();
    await this.queryEncoder?.encoder.dispose();
  }

  private open(): Promise<WorkspaceIndex> {
    // The encoder outlives a rebuild (drop + open): it is loaded once per sidecar.
    const loading = this.baseEncoder();
    this.opened ??= (async () => {
      const encoder = await loading;
      const queryEncoder = this.queryEncoder?.encoder;
      return WorkspaceIndex.open(this.opts.indexDir, { ...this.opts.indexOptions, encoder, queryEncoder });
    })().catch((err) => {
      this.opened = undefined;
      this.lastError = `Cannot open the index at ${this.opts.indexDir}: ${errorMessage(err)}`;
      this.emitStatus();
      throw new Error(this.lastError);
    });
    return this.opened;
  }

  /** Closes the index; with `erase` (the default) also deletes its directory so the next open starts empty. */
  private async drop(erase = true): Promise<void> {
    const current = this.opened;
    this.opened = undefined;
    if (current) await (await current.catch(() => undefined))?.close();
    if (erase) await rm(this.opts.indexDir, { recursive: true, force: true });
  }

  private enqueue<T>(work: () => Promise<T>): Promise<T> {
    const result = this.writes.then(work, work);
    this.writes = result.catch(() => undefined);
    return result;
  }

  private emitStatus(): void {
    const busy = this.runningJobs > 0;
    if (this.lastError) {
      this.opts.onStatus({ health: 'error', busy, message: this.lastError });
      return;
    }
    if (!this.opened) {
      this.opts.onStatus({ health: 'ok', busy, message: busy ? 'Indexing…' : 'Not indexed yet' });
      return;
    }
    void this.opened.then(
      (index) => {
        const { files, passages } = index.status();
        const message = busy ? 'Indexing…' : passages ? `${files} files, ${passages} passages` : 'Not indexed yet';
        this.opts.onStatus({ health: passages || busy ? 'ok' : 'warning', busy, message, files, passages });
      },
      () => undefined,
    );
  }
}

/** The passages a search leaves out: those of `excludePath`, or with `excludeLines` only those overlapping that span. */
export function spanExclusion({ excludePath, excludeLines }: SearchParams): ((p: Passage) => boolean) | undefined {
  if (!excludePath) return undefined;
  return (p) => p.path === excludePath && (!excludeLines || (p.startLine <= excludeLines[1] && p.endLine >= excludeLines[0]));
}

export function toWireHit(hit: SearchHit): WireHit {
  const { id, path, startLine, endLine, text } = hit.passage;
  return { id, path, startLine, endLine, text, score: hit.score, denseScore: hit.denseScore, lexicalScore: hit.lexicalScore };
}

export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
