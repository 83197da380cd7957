import { mkdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import {
  WorkspaceIndex,
  type IndexOptions,
  type IndexProgress,
  type FileExplanation,
  type IndexReport,
  type SearchHit,
} from '../index/workspace-index';
import type { Passage } from '../corpus/passage';
import type { Encoder } from '../encoder/encoder';
import { overlaps } from '../generate/retrieval';
import { AbstentionHead } from '../retrieve/abstention';
import type { EncoderFallback, IndexResult, IndexStatusResult, RebuildCheckpoint, SearchParams, StatusParams, WireHit } from './protocol';

export interface IndexServiceOptions {
  indexDir: string;
  /** Engine options other than the encoder. */
  indexOptions: Omit<IndexOptions, 'encoder'>;
  /**
   * The sentence encoder, loaded on first use (slow: model load and ORT session); absent = lexical only. A model
   * that cannot be loaded leaves the index lexical too, with the reason in the status (`encoderFallback`).
   */
  encoder?: { model: string; load: () => Promise<Encoder> };
  /** Called whenever health, busy state or index size changes. */
  onStatus(status: StatusParams): void;
}

export interface IndexJobOptions {
  rebuild?: boolean;
  signal?: AbortSignal;
  onProgress?: (p: IndexProgress) => void;
  /** The files the job left out and why (the result sent to the editor has only counts by reason). */
  onSkipped?: (files: IndexReport['skippedFiles']) => void;
}

/** In the rebuild folder: the roots the rebuild is for. */
const REBUILD_ROOTS = 'rebuild-roots.json';

/**
 * Owns the one WorkspaceIndex of a sidecar. Writes (index jobs, single-file updates) run one after another on a
 * queue because the engine must never run two updates at once; searches skip the queue, so they interleave with a
 * long job between its batches instead of waiting for it to end.
 */
export class IndexService {
  private opened: Promise<WorkspaceIndex> | undefined;
  private encoder: Promise<Encoder | undefined> | undefined;
  /** Set when the configured encoder could not be loaded. */
  private encoderFallback: EncoderFallback | undefined;
  /** A tuned query tower that embeds search queries instead of the index's encoder, with its empty-passage score. */
  private queryEncoder: { model: string; encoder: Encoder; abstention?: AbstentionHead } | undefined;
  /** The empty-passage score of the index's own encoder (a model trained in shared mode with --abstain). */
  private encoderAbstention: Promise<AbstentionHead | undefined> | undefined;
  private writes: Promise<unknown> = Promise.resolve();
  private runningJobs = 0;
  private lastError: string | undefined;
  /** Aborts whatever job runs when the sidecar shuts down. */
  private readonly closing = new AbortController();

  constructor(private readonly opts: IndexServiceOptions) {}

  async status(): Promise<IndexStatusResult> {
    const s = (await this.open()).status();
    return { ...s, busy: this.runningJobs > 0, rebuildCheckpoint: await this.rebuildCheckpoint() };
  }

  /**
   * Brings the index up to date with `roots`. A rebuild (asked for, left unfinished by a crash or shutdown, or
   * forced by changed settings) is built beside the live index and swapped in at the end: see `rebuild`.
   */
  index(roots: string[], job: IndexJobOptions = {}): Promise<IndexResult> {
    return this.enqueue(async () => {
      this.runningJobs++;
      this.publishStatus();
      const signal = job.signal ? AbortSignal.any([job.signal, this.closing.signal]) : this.closing.signal;
      try {
        const live = await this.open();
        const rebuild = job.rebuild
          ? 'a rebuild was asked for'
          : (await this.rebuildCheckpoint())
            ? 'a rebuild was interrupted'
            : live.pendingRebuild();
        const update = { signal, onProgress: job.onProgress };
        const { report, resumedRebuild } = rebuild
          ? await this.rebuild(live, roots, rebuild, update)
          : { report: await live.update(roots, update), resumedRebuild: undefined };
        this.lastError = undefined;
        // The per-file skip list can be long: the counts per reason go to the editor, the list to the caller.
        const { skippedFiles, ...counts } = report;
        job.onSkipped?.(skippedFiles);
        return { cancelled: false as const, ...counts, resumedRebuild };
      } catch (err) {
        if (signal.aborted) return { cancelled: true as const };
        this.lastError = errorMessage(err);
        throw err;
      } finally {
        this.runningJobs--;
        this.publishStatus();
      }
    });
  }

  updateFile(path: string): Promise<void> {
    return this.enqueue(async () => (await this.open()).updateFile(path)).finally(() => this.publishStatus());
  }

  async explainFile(path: string): Promise<FileExplanation> {
    return (await this.open()).explainFile(path);
  }

  removeFile(path: string): Promise<void> {
    return this.enqueue(async () => (await this.open()).removeFile(path)).finally(() => this.publishStatus());
  }

  async search(params: SearchParams): Promise<WireHit[]> {
    const query = params.query.trim();
    if (!query) return [];
    const verdict = params.abstain ? await this.abstention(params) : undefined;
    if (verdict?.abstains) return [];
    const hits = await (await this.open()).search(query, { k: params.k, mode: params.mode, exclude: spanExclusion(params), queryVector: verdict?.vector });
    return hits.map(toWireHit);
  }

  /**
   * Whether the model that embeds queries (the tuned query model, else the index's encoder) was trained with
   * --abstain and ranks the empty passage above every passage a search with these params could return: its score
   * is above their best cosine.
   */
  async abstains(params: SearchParams): Promise<boolean> {
    return (await this.abstention(params)).abstains;
  }

  /** The abstention verdict, with the query embedding it took (a search that follows reuses it). */
  private async abstention(params: SearchParams): Promise<{ abstains: boolean; vector?: Float32Array }> {
    const query = params.query.trim();
    const index = await this.open();
    const encoder = this.queryEncoder?.encoder ?? (await this.baseEncoder());
    const head = this.queryEncoder ? this.queryEncoder.abstention : await this.baseAbstention();
    if (!query || !encoder || !head || !index.status().dense) return { abstains: false };
    const [vector] = await encoder.embed([query]);
    return { abstains: head.abstains(index.searchVector(vector, 1, spanExclusion(params))[0]?.similarity), vector };
  }

  /**
   * The index's own encoder, loaded on first use. Undefined for a lexical-only sidecar, and when the configured
   * model cannot be loaded: the index then works lexically (BM25) rather than not at all, and the status says why.
   */
  baseEncoder(): Promise<Encoder | undefined> {
    const configured = this.opts.encoder;
    if (!configured) return Promise.resolve(undefined);
    this.encoder ??= configured.load().catch((err) => {
      this.encoderFallback = { model: configured.model, reason: errorMessage(err) };
      this.publishStatus();
      return undefined;
    });
    return this.encoder;
  }

  private baseAbstention(): Promise<AbstentionHead | undefined> {
    const model = this.opts.encoder?.model;
    this.encoderAbstention ??= (model ? AbstentionHead.load(model) : Promise.resolve(undefined)).catch((err: unknown) => {
      this.encoderAbstention = undefined; // asked again next time, so a repaired file is read
      throw err;
    });
    return this.encoderAbstention;
  }

  /** Why dense retrieval is unavailable although an encoder is configured, in words that say what to do. */
  get encoderProblem(): string | undefined {
    const fallback = this.encoderFallback;
    return fallback && `the encoder ${fallback.model} could not be loaded (${fallback.reason}): fix replugCode.encoder.model, or clear it for lexical search`;
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
      // The head first: a damaged one then leaves no loaded encoder behind.
      const next = model ? { model, abstention: await AbstentionHead.load(model), encoder: await load(model) } : undefined;
      const previous = this.queryEncoder;
      await this.drop();
      this.queryEncoder = next;
      await previous?.encoder.dispose();
      await this.open();
    });
  }

  async close(): Promise<void> {
    // Let a running job observe the abort and finish its batch before the index is closed under it.
    this.closing.abort();
    await this.writes.catch(() => undefined);
    await this.drop();
    await (await this.encoder?.catch(() => undefined))?.dispose();
    await this.queryEncoder?.encoder.dispose();
  }

  private open(): Promise<WorkspaceIndex> {
    this.opened ??= this.engineOptions()
      .then((options) => WorkspaceIndex.open(this.opts.indexDir, options))
      .catch((err) => {
        this.opened = undefined;
        this.lastError = `Cannot open the index at ${this.opts.indexDir}: ${errorMessage(err)}`;
        this.publishStatus();
        throw new Error(this.lastError);
      });
    return this.opened;
  }

  private async engineOptions(): Promise<IndexOptions> {
    // The encoder outlives a reopen: it is loaded once per sidecar.
    const encoder = await this.baseEncoder();
    return { ...this.opts.indexOptions, encoder, queryEncoder: this.queryEncoder?.encoder };
  }

  /** Where a rebuild is written and checkpointed until it replaces the live index: beside it, never inside it. */
  private get rebuildDir(): string {
    return `${resolve(this.opts.indexDir)}.rebuild`;
  }

  /**
   * Builds a new index in `rebuildDir` and makes it the live index's next generation at the end. Its checkpoints
   * stay in `rebuildDir`, so the live generation answers searches throughout and survives a crash at any moment,
   * while the next job resumes the rebuild from its last checkpoint. A cancelled or failed rebuild is discarded.
   */
  private async rebuild(
    live: WorkspaceIndex,
    roots: string[],
    reason: string,
    update: { signal: AbortSignal; onProgress?: (p: IndexProgress) => void },
  ): Promise<{ report: IndexReport; resumedRebuild?: RebuildCheckpoint }> {
    // An update keeps the files of roots it is not given: a checkpoint of other roots cannot be continued.
    const wanted = JSON.stringify([...new Set(roots.map((root) => resolve(root)))].sort());
    const rootsFile = join(this.rebuildDir, REBUILD_ROOTS);
    if ((await readFile(rootsFile, 'utf8').catch(() => undefined)) !== wanted) {
      await rm(this.rebuildDir, { recursive: true, force: true });
      await mkdir(this.rebuildDir, { recursive: true });
      await writeFile(rootsFile, wanted);
    }
    const scratch = await WorkspaceIndex.open(this.rebuildDir, await this.engineOptions());
    let finished = false;
    try {
      const { files, passages } = scratch.status();
      const resumedRebuild = files > 0 && !scratch.pendingRebuild() ? { files, passages } : undefined;
      const report = await scratch.update(roots, update);
      await live.replaceWith(scratch);
      finished = true;
      return { report: { ...report, rebuilt: report.rebuilt ?? reason }, resumedRebuild };
    } finally {
      await scratch.close();
      // Kept only when the sidecar shuts down mid-way; cancelled or failed, the rebuild is dropped.
      if (finished || !this.closing.signal.aborted) await rm(this.rebuildDir, { recursive: true, force: true });
    }
  }

  /** What an unfinished rebuild has saved so far; undefined when none is waiting. */
  private async rebuildCheckpoint(): Promise<RebuildCheckpoint | undefined> {
    const exists = await stat(this.rebuildDir).then(() => true, () => false);
    if (!exists) return undefined;
    const manifest = await WorkspaceIndex.readManifest(this.rebuildDir).catch(() => undefined);
    return { files: manifest?.files ?? 0, passages: manifest?.passages ?? 0 };
  }

  /** Closes the live index (saving pending work) so that the next use reopens it. */
  private async drop(): Promise<void> {
    const current = this.opened;
    this.opened = undefined;
    if (current) await (await current.catch(() => undefined))?.close();
  }

  private enqueue<T>(work: () => Promise<T>): Promise<T> {
    const result = this.writes.then(work, work);
    this.writes = result.catch(() => undefined);
    return result;
  }

  /** Sends health, busy state, index size and any encoder fallback (on every change, and once at start). */
  publishStatus(): void {
    const busy = this.runningJobs > 0;
    const encoderFallback = this.encoderFallback;
    if (this.lastError) {
      this.opts.onStatus({ health: 'error', busy, message: this.lastError, encoderFallback });
      return;
    }
    const publish = (files?: number, passages?: number) => {
      const size = busy ? 'Indexing…' : passages ? `${files} files, ${passages} passages` : 'Not indexed yet';
      const lexicalOnly = encoderFallback ? '; lexical search only (the encoder could not be loaded)' : '';
      const health = encoderFallback || (!busy && !passages) ? 'warning' : 'ok';
      this.opts.onStatus({ health, busy, message: size + lexicalOnly, files, passages, encoderFallback });
    };
    if (!this.opened) {
      publish();
      return;
    }
    void this.opened.then(
      (index) => {
        const { files, passages } = index.status();
        publish(files, passages);
      },
      () => undefined,
    );
  }
}

/** The passages a search leaves out: those of `excludePath`, or with `excludeLines` only those overlapping that span. */
export function spanExclusion({ excludePath, excludeLines }: SearchParams): ((p: Passage) => boolean) | undefined {
  return excludePath ? overlaps({ path: excludePath, startLine: excludeLines?.[0], endLine: excludeLines?.[1] }) : undefined;
}

export function toWireHit(hit: SearchHit): WireHit {
  const { id, path, startLine, endLine, text } = hit.passage;
  return { id, path, startLine, endLine, text, score: hit.score, denseScore: hit.denseScore, lexicalScore: hit.lexicalScore };
}

export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
