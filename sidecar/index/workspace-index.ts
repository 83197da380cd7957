import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { setImmediate as yieldToEventLoop } from 'node:timers/promises';
import { estimateTokens } from '../corpus/chunk';
import { corpusPassages, validateCorpus } from '../corpus/corpus-file';
import { DEFAULT_FILE_CHUNKING, FileChunker, strategyOfFingerprint, type FileChunkOptions, type SyntaxFallback } from '../corpus/file-chunker';
import type { Passage, TokenCounter } from '../corpus/passage';
import { explainExclusion, type Exclusion } from '../corpus/exclusion';
import { checkShard, type ShardSpec } from '../corpus/shard';
import { DEFAULT_EXCLUDES, walkRoots, type SkipReason, type WalkOptions } from '../corpus/walk';
import type { Encoder } from '../encoder/encoder';
import { modelSpec } from '../encoder/model-source';
import { hybridSearch, type SearchMode } from '../retrieve/hybrid-search';
import { DenseIndex } from './dense-index';
import { describeFallback, IndexDamagedError, loadGeneration, readStoredManifest, saveGeneration } from './index-files';
import { IndexLock } from './index-lock';
import { PassageTable, type StoredPassage } from './index-state';
import { LexicalIndex } from './lexical-index';
import { denseCompatible, denseMismatch, INDEX_FORMAT_VERSION, rebuildReason, type EncoderStamp, type IndexManifest } from './manifest';

export type { SearchMode } from '../retrieve/hybrid-search';

/** How often a long index job saves its progress unless told otherwise. */
export const DEFAULT_CHECKPOINT_SECONDS = 30;

export interface IndexOptions {
  /** Without an encoder the index is lexical only. */
  encoder?: Encoder;
  /** How the encoder was specified (path or model id); recorded (a path made absolute) so `search` can load the same one. */
  encoderSpec?: string;
  /**
   * Embeds queries instead of `encoder` (a query tower fine-tuned with LSR against this index's document vectors).
   * It must produce vectors of the same dimension.
   */
  queryEncoder?: Encoder;
  chunking?: Partial<FileChunkOptions>;
  include?: string[];
  exclude?: string[];
  /** Globs of files to index even when a built-in rule (excludes, lock files, minified or generated) would skip them. */
  keep?: string[];
  maxFileBytes?: number;
  /** Seconds between checkpoints during a long update (a crash loses at most this much work). */
  checkpointSeconds?: number;
  /** Open without the writer lock, for searching beside a process that updates the same directory. */
  readOnly?: boolean;
  /** Index only this shard's rows of corpus files (by row id; see corpus/shard.ts); folders cannot be sharded. */
  shard?: ShardSpec;
}

export interface IndexProgress {
  phase: 'scan' | 'embed' | 'save';
  files: number;
  /** Rows of corpus files (CSV, JSON Lines) read so far. */
  rows: number;
  passagesToEmbed: number;
  passagesEmbedded: number;
}

export interface UpdateOptions {
  /** Corpus files indexed beside the roots: CSV (`id,text` columns) or JSON Lines (`_id`, `text`: BEIR's corpus.jsonl). */
  csv?: string[];
  signal?: AbortSignal;
  onProgress?: (progress: IndexProgress) => void;
}

export interface IndexReport {
  files: number;
  filesChanged: number;
  filesRemoved: number;
  passages: number;
  passagesEmbedded: number;
  skipped: Record<string, number>;
  skippedFiles: { path: string; reason: string; detail?: string }[];
  seconds: number;
  /** Why the stored index was discarded and rebuilt, if it was. */
  rebuilt?: string;
  /** Syntax chunking: files of a supported language that were cut into line windows after all, by reason. */
  windowed?: Partial<Record<SyntaxFallback, number>>;
  /** Syntax chunking: grammars that failed to load, with the reason (their files were cut into line windows). */
  grammarErrors?: Record<string, string>;
}

export interface SearchHit {
  passage: Passage;
  score: number;
  denseScore?: number;
  lexicalScore?: number;
}

export interface SearchOptions {
  k?: number;
  mode?: SearchMode;
  exclude?: (passage: Passage) => boolean;
  /** The query's embedding when the caller has it already (made by the encoder this index searches with). */
  queryVector?: Float32Array;
}

/** A dense hit with the stored passage vector, which LSR training uses as a fixed candidate embedding. */
export interface VectorHit {
  passage: Passage;
  similarity: number;
  vector: Float32Array;
}

export interface IndexStatus {
  dir: string;
  files: number;
  passages: number;
  dense: boolean;
  encoder?: string;
  updatedAt?: string;
  /** Set when the live generation was damaged and an older one is used: which, and what to do. */
  damage?: string;
}

/** Why one file is or is not in the index. */
export type FileExplanation =
  | { state: 'indexed'; passages: number }
  | { state: 'skipped'; reason: SkipReason; detail?: string }
  | ({ state: 'excluded' } & Exclusion)
  | { state: 'outside-roots' }
  /** Indexable, but not indexed (yet): created or changed since the last index job, or never indexed. */
  | { state: 'not-indexed' }
  | { state: 'missing' };

/** Passages embedded per encoder call while indexing; large enough to batch well, small enough to yield often. */
const EMBED_BATCH = 256;
const ESTIMATE_COUNTER_ID = 'estimate-v1';

/** A pending change to one file: its passages after the change. */
interface FileChange {
  file: string;
  root: string;
  size: number;
  mtimeMs: number;
  passages: Passage[];
}

/**
 * The retrieval index of one workspace (or CSV corpus): passage table, BM25 and HNSW, persisted as atomic
 * generations in `dir`. One process writes a directory at a time (a lock file); all calls run on the caller's
 * JS thread, and long updates yield between batches so searches interleave with them.
 */
export class WorkspaceIndex {
  private dirty = false;
  private lastSave = Date.now();
  /** An update is under way or ended early: saves until one completes are marked partial. */
  private partial = false;
  private fileChunker: FileChunker | undefined;

  private constructor(
    readonly dir: string,
    private readonly options: IndexOptions,
    private readonly lock: IndexLock | undefined,
    private table: PassageTable,
    private lexical: LexicalIndex,
    private dense: DenseIndex | undefined,
    private manifest: IndexManifest | undefined,
    /** Set when the stored generation could not be read; the next update starts from scratch. */
    private loadProblem: string | undefined,
    /** The generation loaded or last saved: kept beside the next save as the fallback should that one be damaged. */
    private generation: number | undefined,
    private damage: string | undefined,
  ) {}

  /** Opens (or creates) the index in `dir`. Nothing is rebuilt here: `update` decides what must change. */
  static async open(dir: string, opts: IndexOptions = {}): Promise<WorkspaceIndex> {
    const absDir = path.resolve(dir);
    const options = opts.encoderSpec ? { ...opts, encoderSpec: modelSpec(opts.encoderSpec) } : opts;
    const lock = options.readOnly ? undefined : await IndexLock.acquire(absDir);
    try {
      const loaded = await loadGeneration(absDir);
      // A reader never searches an unusable index as if it were empty; a writer rebuilds it (see prepareForSettings).
      if (options.readOnly && loaded.problem) throw new IndexDamagedError(absDir, loaded.problem);
      const dense = loaded.dense ?? (options.encoder ? DenseIndex.create(options.encoder.dim) : undefined);
      return new WorkspaceIndex(
        absDir, options, lock, loaded.table, loaded.lexical, dense, loaded.manifest, loaded.problem,
        loaded.generation?.number, describeFallback(loaded),
      );
    } catch (err) {
      await lock?.release();
      throw err;
    }
  }

  /** The manifest of the generation `open` would load, without opening the index; throws when none is intact. */
  static readManifest(dir: string): Promise<IndexManifest | undefined> {
    return readStoredManifest(path.resolve(dir));
  }

  status(): IndexStatus {
    return {
      dir: this.dir,
      files: this.table.files.size,
      passages: this.table.byId.size,
      dense: this.denseUsable(),
      encoder: this.manifest?.encoder ? (this.manifest.encoder.model ?? this.manifest.encoder.fingerprint) : undefined,
      updatedAt: this.manifest?.updatedAt,
      damage: this.damage,
    };
  }

  /** The manifest of the stored generation (undefined for a new index). */
  storedManifest(): IndexManifest | undefined {
    return this.manifest;
  }

  /**
   * Why the stored generation cannot be updated in place, so that the next update starts from an empty index: it
   * could not be read, or its format, chunking or encoder differs from the settings now configured.
   */
  pendingRebuild(): string | undefined {
    if (this.loadProblem) return this.loadProblem;
    if (!this.manifest) return undefined;
    const reason = rebuildReason(this.manifest, { chunking: this.chunkingStamp() });
    if (reason) return reason;
    // Same passages, other vectors: every passage must be embedded again.
    const stale = this.options.encoder !== undefined ? denseMismatch(this.manifest, this.encoderStamp()) : undefined;
    return stale && this.table.byId.size > 0 ? stale : undefined;
  }

  /**
   * Makes the contents of `source` (an index with the same settings built beside this one: a rebuild) the
   * contents of this directory, saved as its next generation. Until then searches see the old contents.
   */
  async replaceWith(source: WorkspaceIndex): Promise<void> {
    this.assertWritable();
    const previous = { table: this.table, lexical: this.lexical, dense: this.dense, manifest: this.manifest, dirty: this.dirty };
    this.table = source.table;
    this.lexical = source.lexical;
    this.dense = source.dense;
    this.manifest = source.manifest;
    this.fileChunker = undefined; // the rebuilt contents may have been cut by another strategy (see `chunking`)
    this.dirty = true;
    try {
      await this.save([]);
    } catch (err) {
      ({ table: this.table, lexical: this.lexical, dense: this.dense, manifest: this.manifest, dirty: this.dirty } = previous);
      throw err;
    }
    this.loadProblem = undefined;
  }

  /**
   * Brings the index in line with `roots` (and CSV corpora): chunks new and changed files, embeds only passages
   * whose text is new, drops passages of files that are gone. Checkpoints as it goes; an abort saves first.
   */
  async update(roots: string[], opts: UpdateOptions = {}): Promise<IndexReport> {
    this.assertWritable();
    const started = Date.now();
    const absRoots = roots.map((root) => path.resolve(root));
    for (const root of absRoots) {
      const stat = await fs.stat(root).catch(() => undefined);
      if (!stat?.isDirectory()) throw new Error(`${root} is not a folder: pass existing folders to index.`);
    }
    this.checkShard(absRoots);
    const corpora = (opts.csv ?? []).map((file) => path.resolve(file));
    const unchanged = await this.unchangedCorpora(corpora);
    // Validate every corpus file before touching the index: a bad file indexes nothing. Each is read through twice
    // (here, then to index it) rather than held: a corpus may be far larger than memory.
    for (const file of corpora) if (!unchanged.has(file)) await validateCorpus(file, this.options.shard);

    const rebuilt = this.prepareForSettings();
    // A first update always saves, even of an empty folder: afterwards the index exists, with zero passages.
    if (!this.manifest) this.dirty = true;
    this.partial = true;
    const report: IndexReport = {
      files: 0, filesChanged: 0, filesRemoved: 0, passages: 0, passagesEmbedded: 0,
      skipped: {}, skippedFiles: [], seconds: 0, rebuilt,
    };
    const progress: IndexProgress = { phase: 'scan', files: 0, rows: 0, passagesToEmbed: 0, passagesEmbedded: 0 };
    const emit = () => opts.onProgress?.({ ...progress });
    const seen = new Set<string>();
    let pending: FileChange[] = [];
    let pendingPassages = 0;

    const flush = async () => {
      if (pending.length === 0) return;
      const batch = pending;
      pending = [];
      pendingPassages = 0;
      const embedded = await this.applyChanges(batch, (n) => {
        progress.passagesEmbedded += n;
        emit();
      });
      report.passagesEmbedded += embedded;
      await this.checkpointIfDue();
    };

    const consider = async (change: FileChange) => {
      const known = this.table.files.get(change.file);
      const ids = change.passages.map((p) => p.id);
      if (known && sameIds(known.passageIds, ids)) {
        // Same passages, new mtime: record it so the next scan skips the file without chunking.
        this.table.files.set(change.file, { ...known, size: change.size, mtimeMs: change.mtimeMs });
        return;
      }
      report.filesChanged++;
      pending.push(change);
      const newPassages = change.passages.filter((p) => !this.table.byId.has(p.id)).length;
      pendingPassages += newPassages;
      progress.passagesToEmbed += this.dense ? newPassages : 0;
      if (pendingPassages >= EMBED_BATCH) await flush();
    };

    try {
      for (const file of corpora) {
        seen.add(file);
        report.files++;
        if (unchanged.has(file)) continue;
        const { changed, embedded } = await this.streamCorpus(file, opts.signal, (rows, discovered) => {
          progress.rows += rows;
          progress.passagesToEmbed += this.dense ? discovered : 0;
          emit();
        }, (n) => {
          progress.passagesEmbedded += n;
          emit();
        });
        if (changed) report.filesChanged++;
        report.passagesEmbedded += embedded;
      }
      for await (const entry of walkRoots(absRoots, this.walkOptions())) {
        throwIfAborted(opts.signal);
        // An index kept inside an indexed folder must not index itself.
        if (entry.absPath.startsWith(this.dir + path.sep)) continue;
        if (entry.kind === 'skip') {
          report.skipped[entry.reason] = (report.skipped[entry.reason] ?? 0) + 1;
          report.skippedFiles.push({ path: entry.absPath, reason: entry.reason, detail: entry.detail });
          continue;
        }
        seen.add(entry.absPath);
        report.files++;
        progress.files++;
        if (progress.files % 200 === 0) {
          emit();
          await yieldToEventLoop();
        }
        const known = this.table.files.get(entry.absPath);
        if (known && known.size === entry.size && known.mtimeMs === entry.mtimeMs && known.root === entry.root) continue;
        const { passages, fallback } = await this.chunker().chunk({ path: entry.absPath, text: entry.text }, this.tokenCounter());
        if (fallback) (report.windowed ??= {})[fallback] = (report.windowed[fallback] ?? 0) + 1;
        await consider({ file: entry.absPath, root: entry.root, size: entry.size, mtimeMs: entry.mtimeMs, passages });
      }
      for (const [file, record] of this.table.files) {
        if (seen.has(file)) continue;
        const underRoot = record.root !== '' && absRoots.includes(record.root);
        if (!underRoot) continue;
        report.filesRemoved++;
        pending.push({ file, root: record.root, size: 0, mtimeMs: 0, passages: [] });
      }
      progress.phase = 'embed';
      await flush();
      this.partial = false;
      // A rerun that finds everything indexed still saves once, to clear the partial mark of the killed run.
      if (this.manifest?.partial) this.dirty = true;
    } finally {
      // Whatever finished is kept, including on abort or error.
      progress.phase = 'save';
      emit();
      await this.save(absRoots);
    }
    if (this.chunker().unavailable.size > 0) report.grammarErrors = Object.fromEntries(this.chunker().unavailable);
    report.passages = this.table.byId.size;
    report.seconds = (Date.now() - started) / 1000;
    return report;
  }

  /** Re-chunks one file after a save in the editor. The file must lie under a root indexed before. */
  async updateFile(absPath: string): Promise<void> {
    this.assertWritable();
    const file = path.resolve(absPath);
    const root = this.rootOf(file);
    if (root === undefined) throw new Error(`${file} is not under an indexed root; index its folder first.`);
    let passages: Passage[] = [];
    let size = 0;
    let mtimeMs = 0;
    for await (const entry of walkRoots([root], { ...this.walkOptions(), only: [file] })) {
      if (entry.kind === 'file' && entry.absPath === file) {
        ({ passages } = await this.chunker().chunk({ path: file, text: entry.text }, this.tokenCounter()));
        size = entry.size;
        mtimeMs = entry.mtimeMs;
      }
    }
    // A file that became ignored, binary or too large leaves the index like a deleted one.
    await this.applyChanges([{ file, root, size, mtimeMs, passages }], () => undefined);
    if (passages.length === 0) this.table.files.delete(file);
    await this.checkpointIfDue();
  }

  /** Drops a deleted file's passages; for a deleted folder (one watcher event), those of every file under it. */
  async removeFile(absPath: string): Promise<void> {
    this.assertWritable();
    const target = path.resolve(absPath);
    const gone = [...this.table.files].filter(([file]) => file === target || file.startsWith(target + path.sep));
    if (gone.length === 0) return;
    await this.applyChanges(gone.map(([file, record]) => ({ file, root: record.root, size: 0, mtimeMs: 0, passages: [] })), () => undefined);
    await this.checkpointIfDue();
  }

  /** Why `absPath` is or is not in the index: its passages, the walk's skip reason, or the rule that leaves it out. */
  async explainFile(absPath: string): Promise<FileExplanation> {
    const file = path.resolve(absPath);
    const record = this.table.files.get(file);
    if (record) return { state: 'indexed', passages: record.passageIds.length };
    if (!(await fs.stat(file).catch(() => undefined))?.isFile()) return { state: 'missing' };
    const root = this.rootOf(file);
    // An index that has seen no root yet (its first job is only starting) cannot tell outside from not yet.
    if (root === undefined) return this.manifest || this.table.files.size ? { state: 'outside-roots' } : { state: 'not-indexed' };
    for await (const entry of walkRoots([root], { ...this.walkOptions(), only: [file] })) {
      if (entry.absPath !== file) continue;
      if (entry.kind === 'file') return { state: 'not-indexed' };
      return entry.detail === undefined ? { state: 'skipped', reason: entry.reason } : { state: 'skipped', reason: entry.reason, detail: entry.detail };
    }
    return { state: 'excluded', ...explainExclusion(path.relative(root, file).split(path.sep).join('/'), this.walkOptions()) };
  }

  async search(query: string, opts: SearchOptions = {}): Promise<SearchHit[]> {
    // A blank query embeds to an arbitrary direction: its "nearest" passages would be noise presented as hits.
    if (query.trim() === '') throw new Error('give a query: the query is empty');
    const k = opts.k ?? 10;
    const mode = opts.mode ?? (this.denseUsable() ? 'hybrid' : 'lexical');
    if (mode !== 'lexical' && !this.denseUsable()) {
      throw new Error(
        this.options.encoder
          ? `The index has no vectors for this encoder yet (${denseMismatch(this.manifest, this.encoderStamp()) ?? 'the index has no vectors yet'}): run index with the same --model and --precision first.`
          : `${mode} search needs an encoder: pass --model (the one the index was built with), or use --mode lexical.`,
      );
    }
    const exclude = opts.exclude;
    const acceptId = exclude ? (id: string) => !exclude(this.table.byId.get(id)!) : undefined;
    const hits = await hybridSearch(query, k, mode, {
      lexical: (q, n) => this.lexical.search(q, n, acceptId),
      dense: async (q, n) => {
        const [vector] = opts.queryVector ? [opts.queryVector] : await (this.options.queryEncoder ?? this.options.encoder!).embed([q]);
        return this.denseLabels(vector, n, exclude).map((hit) => ({ id: hit.passage.id, score: hit.similarity }));
      },
    });
    return hits.map(({ id, ...scores }) => ({ passage: this.publicPassage(id), ...scores }));
  }

  /** Nearest passages to an already computed query vector, with their stored vectors (dense indexes only). */
  searchVector(vector: Float32Array, k: number, exclude?: (passage: Passage) => boolean): VectorHit[] {
    if (!this.dense || !this.manifest?.encoder) throw new Error('this index has no vectors: run index with --model first');
    return this.denseLabels(vector, k, exclude).map((hit) => ({
      passage: this.publicPassage(hit.passage.id),
      similarity: hit.similarity,
      vector: this.dense!.vector(hit.passage.label),
    }));
  }

  /** Passages in index order, for training and evaluation. */
  passages(): Passage[] {
    return [...this.table.byId.values()].map((p) => this.publicPassage(p.id));
  }

  /** Saves pending work and releases the directory. */
  async close(): Promise<void> {
    try {
      if (this.dirty) await this.save(this.manifest?.roots ?? []);
    } finally {
      await this.lock?.release();
    }
  }

  private denseLabels(vector: Float32Array, k: number, exclude?: (passage: Passage) => boolean): { passage: StoredPassage; similarity: number }[] {
    const accept = exclude
      ? (label: number) => {
          const passage = this.table.byLabel.get(label);
          return passage !== undefined && !exclude(passage);
        }
      : undefined;
    return this.dense!.search(vector, k, accept).flatMap((hit) => {
      const passage = this.table.byLabel.get(hit.label);
      return passage ? [{ passage, similarity: hit.similarity }] : [];
    });
  }

  private assertWritable(): void {
    if (!this.lock) throw new Error('This index was opened read-only; open it without readOnly to change it.');
  }

  private publicPassage(id: string): Passage {
    const { label: _label, ...passage } = this.table.byId.get(id)!;
    return passage;
  }

  private denseUsable(): boolean {
    return this.options.encoder !== undefined && this.dense !== undefined && denseCompatible(this.manifest, this.encoderStamp());
  }

  private encoderStamp(): EncoderStamp | undefined {
    const encoder = this.options.encoder;
    return encoder ? { fingerprint: encoder.fingerprint, dim: encoder.dim, model: this.options.encoderSpec, precision: encoder.precision } : undefined;
  }

  private chunking(): FileChunkOptions {
    // An index keeps the strategy it was built with unless one is asked for, so a new default does not rebuild it.
    const stored = this.manifest && { strategy: strategyOfFingerprint(this.manifest.chunking) };
    return { ...DEFAULT_FILE_CHUNKING, ...stored, ...this.options.chunking };
  }

  private chunker(): FileChunker {
    this.fileChunker ??= new FileChunker(this.chunking());
    return this.fileChunker;
  }

  private tokenCounter(): TokenCounter {
    const encoder = this.options.encoder;
    return encoder ? (text) => encoder.countTokens(text) : estimateTokens;
  }

  private chunkingStamp(): string {
    return `${this.chunker().fingerprint}|${this.options.encoder?.tokenizerFingerprint ?? ESTIMATE_COUNTER_ID}`;
  }

  private walkOptions(): WalkOptions {
    const extra = this.options.exclude ?? [];
    return {
      include: this.options.include,
      // User globs add to the defaults (dependencies, build output…) rather than replace them.
      exclude: extra.length ? [...DEFAULT_EXCLUDES, ...extra] : undefined,
      keep: this.options.keep,
      maxFileBytes: this.options.maxFileBytes,
    };
  }

  private rootOf(file: string): string | undefined {
    const roots = new Set([...(this.manifest?.roots ?? []), ...[...this.table.files.values()].map((r) => r.root)]);
    return [...roots]
      .filter((root) => root !== '' && (file === root || file.startsWith(root + path.sep)))
      .sort((a, b) => b.length - a.length)[0];
  }

  /**
   * Reconciles the loaded generation with the settings now configured: when it cannot be updated in place
   * (see `pendingRebuild`), everything is discarded and every file is chunked and embedded again.
   */
  /**
   * Corpus files with the size and mtime the last complete update recorded, as the folder walk skips unchanged
   * files: neither validated nor read again. None while an update is unfinished (a streamed file's record carries
   * its size and mtime from the start) or when the index must be rebuilt.
   */
  private async unchangedCorpora(files: string[]): Promise<Set<string>> {
    const unchanged = new Set<string>();
    if (this.partial || this.manifest?.partial || this.pendingRebuild()) return unchanged;
    for (const file of files) {
      const known = this.table.files.get(file);
      const stat = known && (await fs.stat(file).catch(() => undefined));
      if (stat && stat.size === known.size && stat.mtimeMs === known.mtimeMs) unchanged.add(file);
    }
    return unchanged;
  }

  private prepareForSettings(): string | undefined {
    const reason = this.pendingRebuild();
    if (reason) {
      const encoder = this.options.encoder;
      this.loadProblem = undefined;
      this.table = new PassageTable();
      this.lexical = LexicalIndex.create();
      this.dense = encoder ? DenseIndex.create(encoder.dim) : undefined;
      this.dirty = true;
    }
    return reason;
  }

  /** Applies file changes: embeds new passage texts (reusing vectors of identical texts), then swaps passages. */
  private async applyChanges(changes: FileChange[], onEmbedded: (n: number) => void): Promise<number> {
    const fresh: Passage[] = [];
    const freshIds = new Set<string>();
    for (const change of changes) {
      for (const passage of change.passages) {
        if (!this.table.byId.has(passage.id) && !freshIds.has(passage.id)) {
          fresh.push(passage);
          freshIds.add(passage.id);
        }
      }
    }
    const { vectors, embedded } = await this.embedNew(fresh, onEmbedded);

    // From here to the end nothing awaits: the tables, BM25 and HNSW change together.
    for (const change of changes) {
      const wanted = new Set(change.passages.map((p) => p.id));
      for (const id of this.table.files.get(change.file)?.passageIds ?? []) {
        if (!wanted.has(id)) this.deletePassage(id);
      }
      for (const passage of change.passages) {
        if (!this.table.byId.has(passage.id)) this.insertPassage(passage, vectors.get(passage.id));
      }
      if (change.passages.length === 0 && change.size === 0 && change.mtimeMs === 0) this.table.files.delete(change.file);
      else {
        this.table.files.set(change.file, {
          root: change.root,
          size: change.size,
          mtimeMs: change.mtimeMs,
          passageIds: change.passages.map((p) => p.id),
        });
      }
    }
    this.dirty = true;
    return embedded;
  }

  /**
   * Streams a corpus file (CSV or JSON Lines; this index's shard of it) into the index in batches of EMBED_BATCH new
   * passages, each applied and checkpointed on its own, so neither the file nor its passages are ever held whole: a
   * killed build keeps what it embedded, and a rerun reads the file again but embeds only passages it lacks.
   * Passages of rows no longer in the file are dropped at the end.
   */
  private async streamCorpus(
    file: string,
    signal: AbortSignal | undefined,
    onBatch: (rows: number, newPassages: number) => void,
    onEmbedded: (n: number) => void,
  ): Promise<{ changed: boolean; embedded: number }> {
    const stat = await fs.stat(file);
    const record = this.table.files.get(file) ?? { root: '', size: stat.size, mtimeMs: stat.mtimeMs, passageIds: [] };
    this.table.files.set(file, record);
    const before = record.passageIds.slice();
    const inFile: string[] = [];
    // Pieces of one long row share the row's lines, so pieces with the same text share an id: index each id once.
    const seen = new Set<string>();
    let batch: Passage[] = [];
    let rows = 0;
    let embedded = 0;
    const applyBatch = async () => {
      onBatch(rows, batch.length);
      rows = 0;
      const { vectors, embedded: n } = await this.embedNew(batch, onEmbedded);
      embedded += n;
      // From here to the end nothing awaits: the passages and their file record change together.
      for (const passage of batch) this.insertPassage(passage, vectors.get(passage.id));
      record.passageIds.push(...batch.map((p) => p.id));
      this.dirty = true;
      batch = [];
      await this.checkpointIfDue();
    };
    for await (const passages of corpusPassages(file, this.tokenCounter(), this.chunking(), this.options.shard)) {
      throwIfAborted(signal);
      rows++;
      for (const passage of passages) {
        if (seen.has(passage.id)) continue;
        seen.add(passage.id);
        inFile.push(passage.id);
        if (!this.table.byId.has(passage.id)) batch.push(passage);
      }
      if (batch.length >= EMBED_BATCH) await applyBatch();
      else if (rows >= EMBED_BATCH) {
        // Rows already indexed (a resumed build) still show progress.
        onBatch(rows, 0);
        rows = 0;
      }
    }
    if (batch.length > 0) await applyBatch();
    else if (rows > 0) onBatch(rows, 0);

    const keep = new Set(inFile);
    for (const id of record.passageIds) if (!keep.has(id)) this.deletePassage(id);
    const changed = !sameIds(before, inFile);
    if (changed || record.size !== stat.size || record.mtimeMs !== stat.mtimeMs) this.dirty = true;
    this.table.files.set(file, { root: '', size: stat.size, mtimeMs: stat.mtimeMs, passageIds: inFile });
    return { changed, embedded };
  }

  /** Vectors of passages new to the index: reused from a live passage with the same text, else embedded in batches. */
  private async embedNew(fresh: Passage[], onEmbedded: (n: number) => void): Promise<{ vectors: Map<string, Float32Array>; embedded: number }> {
    const vectors = new Map<string, Float32Array>();
    let embedded = 0;
    if (!this.dense) return { vectors, embedded };
    const toEmbed: Passage[] = [];
    for (const passage of fresh) {
      const reuse = this.table.labelForHash(passage.hash);
      if (reuse !== undefined) vectors.set(passage.id, this.dense.vector(reuse));
      else toEmbed.push(passage);
    }
    for (let i = 0; i < toEmbed.length; i += EMBED_BATCH) {
      const slice = toEmbed.slice(i, i + EMBED_BATCH);
      const embeddings = await this.options.encoder!.embed(slice.map((p) => p.text));
      slice.forEach((p, j) => vectors.set(p.id, embeddings[j]));
      embedded += slice.length;
      onEmbedded(slice.length);
    }
    onEmbedded(fresh.length - toEmbed.length);
    return { vectors, embedded };
  }

  private insertPassage(passage: Passage, vector: Float32Array | undefined): void {
    const stored: StoredPassage = { ...passage, label: vector ? this.table.nextLabel++ : -1 };
    if (vector) this.dense!.add(stored.label, vector);
    this.lexical.add(passage);
    this.table.put(stored);
  }

  private deletePassage(id: string): void {
    const removed = this.table.delete(id);
    if (!removed) return;
    this.lexical.remove(removed);
    if (removed.label >= 0) this.dense?.remove(removed.label);
  }

  /** Shards split corpus files by row; a directory holds one shard, the same on every update. */
  private checkShard(roots: string[]): void {
    const shard = this.options.shard && this.options.shard.count > 1 ? this.options.shard : undefined;
    if (shard) {
      checkShard(shard);
      if (roots.length > 0) throw new Error('folders cannot be sharded: index them without a shard, in a directory of their own');
    }
    const stored = this.manifest?.shard;
    if (this.table.byId.size > 0 && (stored?.id !== shard?.id || stored?.count !== shard?.count)) {
      const holds = stored ? `shard ${stored.id} of ${stored.count}` : 'an index that is not sharded';
      const wanted = shard ? `shard ${shard.id} of ${shard.count}` : 'all rows';
      throw new Error(`${this.dir} holds ${holds}, not ${wanted}: give each shard its own --index-dir`);
    }
  }

  private async checkpointIfDue(): Promise<void> {
    const every = (this.options.checkpointSeconds ?? DEFAULT_CHECKPOINT_SECONDS) * 1000;
    if (this.dirty && Date.now() - this.lastSave >= every) await this.save(this.manifest?.roots ?? []);
  }

  private async save(roots: string[]): Promise<void> {
    if (!this.dirty) return;
    const now = new Date().toISOString();
    const allRoots = [...new Set([...(this.manifest?.roots ?? []), ...roots])].sort();
    const manifest: IndexManifest = {
      formatVersion: INDEX_FORMAT_VERSION,
      encoder: this.dense ? this.encoderStamp() : undefined,
      chunking: this.chunkingStamp(),
      createdAt: this.manifest?.createdAt ?? now,
      updatedAt: now,
      roots: allRoots,
      files: this.table.files.size,
      passages: this.table.byId.size,
      ...(this.options.shard && this.options.shard.count > 1 ? { shard: this.options.shard } : {}),
      ...(this.partial ? { partial: true as const } : {}),
    };
    const saved = await saveGeneration(this.dir, { manifest, table: this.table, lexical: this.lexical, dense: this.dense }, this.generation);
    this.generation = saved.number;
    this.damage = undefined;
    this.manifest = manifest;
    this.dirty = false;
    this.lastSave = Date.now();
  }
}

function sameIds(a: string[], b: string[]): boolean {
  return a.length === b.length && a.every((id, i) => id === b[i]);
}

function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw signal.reason instanceof Error ? signal.reason : new Error('indexing cancelled');
}
