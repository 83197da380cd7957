/**
 * The single source of truth for the messages between the VS Code extension and the sidecar.
 * Both sides import this file; neither side declares a `replug/` method anywhere else.
 * Paths on the wire are absolute file-system paths as the extension host sees them.
 */
import {
  NotificationType,
  RequestType,
  RequestType0,
  type WorkDoneProgressParams,
} from 'vscode-languageserver-protocol';
import type { ChunkingStrategy } from '../corpus/file-chunker';
import type { EvalReport } from '../eval/evaluate';
import type { CompletionMode } from '../generate/generator';
import type { IndexReport as EngineIndexReport, FileExplanation, IndexStatus } from '../index/workspace-index';
import type { LsrSettings } from '../lsr/lsr-trainer';

// Type-only: the extension bundle imports this file and must not pull in the engine.
export type { CompletionMode, EvalReport, FileExplanation };

export type SearchMode = 'hybrid' | 'dense' | 'lexical';

/** Sent once in `initialize`; changing any of it requires a sidecar restart. */
export interface InitializationOptions {
  /** Where the index lives (the extension's workspace storage, never inside the repository). */
  indexDir: string;
  /** Sentence-encoder model directory or name; empty = lexical search only. */
  encoderModel?: string;
  encoderDevice?: 'auto' | 'cpu' | 'cuda' | 'webgpu';
  /** Graph precision of the encoder (default auto: fp16 on CUDA, else fp32); stored in the index. */
  encoderPrecision?: 'auto' | 'fp32' | 'int8' | 'fp16';
  /** Passage windowing and strategy, forwarded to the engine's FileChunkOptions. */
  chunking?: { windowLines?: number; strideLines?: number; maxTokens?: number; strategy?: ChunkingStrategy };
  /** Glob patterns relative to each root. */
  include?: string[];
  exclude?: string[];
  /** Globs of files indexed even when they look minified or generated, are lock files or match an exclude glob. */
  keep?: string[];
  /** Where trained models go; default: `models` beside `indexDir`. */
  modelsDir?: string;
  /** Trained query tower that embeds search queries (see UseModelRequest). */
  queryModel?: string;
  /** False in Restricted Mode: the sidecar then refuses every request that would call a language model. */
  workspaceTrusted?: boolean;
}

/** One ranked passage as the extension shows it. */
export interface WireHit {
  id: string;
  path: string;
  /** 1-based inclusive. */
  startLine: number;
  endLine: number;
  text: string;
  score: number;
  denseScore?: number;
  lexicalScore?: number;
}

/** What an unfinished rebuild had saved when it stopped (a crash, or the editor closing). */
export interface RebuildCheckpoint {
  files: number;
  passages: number;
}

export interface IndexStatusResult extends IndexStatus {
  /** True while an index job is running. */
  busy: boolean;
  /** Present while a rebuild waits to be resumed: the next index job continues it. */
  rebuildCheckpoint?: RebuildCheckpoint;
}

/** Sent from the client to the sidecar to ask what the index holds. */
export namespace IndexStatusRequest {
  export const method = 'replug/indexStatus' as const;
  export const type = new RequestType0<IndexStatusResult, void>(method);
}

export interface IndexParams extends WorkDoneProgressParams {
  roots: string[];
  /**
   * Build a whole new index from scratch (Rebuild Index). It is written beside the live index, which keeps
   * answering searches and is replaced only once the new one is complete.
   */
  rebuild?: boolean;
}

/** What one finished index job did: the engine's report without the per-file skip list (counts by reason stay). */
export type IndexReport = Omit<EngineIndexReport, 'skippedFiles'>;

export type IndexResult =
  | { cancelled: true }
  | ({ cancelled: false; /** The job continued an interrupted rebuild from this checkpoint. */ resumedRebuild?: RebuildCheckpoint } & IndexReport);

/**
 * Sent from the client to the sidecar to bring the index up to date with `roots`. It answers when the job ends;
 * the sidecar keeps answering other requests meanwhile. Cancelling the request (or the work-done progress)
 * stops the job at the next batch and answers `cancelled: true` (a cancelled rebuild is discarded, the live index
 * kept). Jobs run one after another, never overlapped.
 */
export namespace IndexRequest {
  export const method = 'replug/index' as const;
  export const type = new RequestType<IndexParams, IndexResult, void>(method);
}

export interface FileParams {
  path: string;
}

/** Sent from the client to the sidecar after a file under an indexed root was saved or created. */
export namespace UpdateFileRequest {
  export const method = 'replug/updateFile' as const;
  export const type = new RequestType<FileParams, void, void>(method);
}

/** Sent from the client to the sidecar to ask why a file is or is not in the index ("Why Isn't This File Indexed?"). */
export namespace ExplainFileRequest {
  export const method = 'replug/explainFile' as const;
  export const type = new RequestType<FileParams, FileExplanation, void>(method);
}

/** Sent from the client to the sidecar after a file was deleted (or renamed away). */
export namespace RemoveFileRequest {
  export const method = 'replug/removeFile' as const;
  export const type = new RequestType<FileParams, void, void>(method);
}

export interface SearchParams {
  query: string;
  k?: number;
  mode?: SearchMode;
  /** Leave out passages of this file (with `excludeLines`, only those overlapping that 1-based inclusive span). */
  excludePath?: string;
  excludeLines?: [number, number];
  /**
   * Answer nothing when the model that embeds queries was trained with abstention (`train --abstain`) and ranks
   * the empty passage above every passage the search could return. No effect with any other model.
   */
  abstain?: boolean;
}

/** Sent from the client to the sidecar to retrieve the top-k passages for a query. */
export namespace SearchRequest {
  export const method = 'replug/search' as const;
  export const type = new RequestType<SearchParams, WireHit[], void>(method);
}

export type Health = 'ok' | 'warning' | 'error';

/** The configured encoder could not be loaded: the index works lexically (BM25) meanwhile. */
export interface EncoderFallback {
  /** The model as configured (replugCode.encoder.model). */
  model: string;
  /** What failed when loading it. */
  reason: string;
}

export interface StatusParams {
  health: Health;
  /** True while an index job runs. */
  busy: boolean;
  message?: string;
  files?: number;
  passages?: number;
  encoderFallback?: EncoderFallback;
}

/** Sent from the sidecar to the client whenever its state changes; drives the status bar. */
export namespace StatusNotification {
  export const method = 'replug/status' as const;
  export const type = new NotificationType<StatusParams>(method);
}

// ---- LM-supervised training, evaluation, models and the managed LM server ----

/** How the sidecar reaches the LM teacher. The API key travels only in requests, never in settings or logs. */
export interface LmEndpoint {
  baseUrl: string;
  model: string;
  apiKey?: string;
  /** LM requests in flight. */
  concurrency?: number;
}

/** Which indexed files give queries (shares are of the indexed files, split by a seeded hash of the path). */
export interface QuerySelection {
  /** CSV (id,text) of queries instead of points cut from the workspace's files. */
  data?: string;
  perFile?: number;
  trainFraction?: number;
  evalFraction?: number;
  seed?: number;
}

/** The engine's LsrSettings; unset keys take its defaults. */
export type TrainingSettings = Partial<LsrSettings>;

export interface TrainParams {
  lm: LmEndpoint;
  settings?: TrainingSettings;
  queries?: QuerySelection;
  device?: 'auto' | 'cpu' | 'cuda';
  /** Continue the run of this id from its last checkpoint (same settings). */
  resumeRunId?: string;
}

export interface TrainStarted {
  runId: string;
  /** The model folder the run writes (under the sidecar's models directory). */
  output: string;
  queries: number;
}

/**
 * Sent from the client to the sidecar to start LSR training in a worker thread. It answers once the run has
 * started; progress arrives as `replug/trainingStatus` notifications and server-initiated work-done progress.
 * One run at a time; refused in an untrusted workspace (training calls the LM).
 */
export namespace TrainRequest {
  export const method = 'replug/train' as const;
  export const type = new RequestType<TrainParams, TrainStarted, void>(method);
}

export type TrainingState = 'idle' | 'starting' | 'running' | 'done' | 'cancelled' | 'failed';

export interface TrainingStatus {
  state: TrainingState;
  runId?: string;
  output?: string;
  step: number;
  steps: number;
  /** KL(Q ‖ P_R) of the last step, and the entropies of both distributions. */
  loss?: number;
  entropyRetriever?: number;
  entropyTeacher?: number;
  lr?: number;
  secondsPerStep?: number;
  etaSeconds?: number;
  /** Step of the last saved checkpoint. */
  checkpointStep?: number;
  message?: string;
}

/** Sent from the client to the sidecar to ask how the current (or last) training run stands. */
export namespace TrainingStatusRequest {
  export const method = 'replug/trainingStatus' as const;
  export const type = new RequestType0<TrainingStatus, void>(method);
}

/** Sent from the sidecar to the client after every step and state change of a training run. */
export namespace TrainingStatusNotification {
  export const method = 'replug/trainingStatusChanged' as const;
  export const type = new NotificationType<TrainingStatus>(method);
}

/**
 * Sent from the client to the sidecar to stop the running training; the trainer saves a checkpoint first. Answers
 * once the run has stopped, with its final status (state `idle` when nothing was running).
 */
export namespace CancelTrainingRequest {
  export const method = 'replug/cancelTraining' as const;
  export const type = new RequestType0<TrainingStatus, void>(method);
}

export interface EvaluateParams extends WorkDoneProgressParams {
  lm: LmEndpoint;
  /** Trained model folder to compare with the index's own encoder; absent = base only. */
  tuned?: string;
  k?: number;
  ensembleK?: number;
  gamma?: number;
  maxQueries?: number;
  queries?: QuerySelection;
}

/** Sent from the client to the sidecar to measure base (and tuned) retrieval on held-out queries with the LM. */
export namespace EvaluateRequest {
  export const method = 'replug/evaluate' as const;
  export const type = new RequestType<EvaluateParams, EvalReport, void>(method);
}

export interface CompareParams {
  query: string;
  tuned: string;
  k?: number;
}

export interface CompareResult {
  base: WireHit[];
  tuned: WireHit[];
}

/** Sent from the client to the sidecar for the top-k of the base and a tuned retriever, side by side. */
export namespace CompareRequest {
  export const method = 'replug/compare' as const;
  export const type = new RequestType<CompareParams, CompareResult, void>(method);
}

export interface ModelInfo {
  /** Model folder. */
  path: string;
  runId: string;
  /** Finished (has a training record) or only checkpointed (stopped early; resumable). */
  trained: boolean;
  mode?: 'query-tower' | 'shared';
  step?: number;
  steps?: number;
  /** Whether its queries can search this index's stored vectors (a query tower trained against them). */
  fitsIndex: boolean;
  modified: string;
}

export interface ModelsResult {
  models: ModelInfo[];
  /** The query encoder searches use now; absent = the index's own encoder. */
  active?: string;
}

/** Sent from the client to the sidecar to list the trained models in its models directory, newest first. */
export namespace ListModelsRequest {
  export const method = 'replug/listModels' as const;
  export const type = new RequestType0<ModelsResult, void>(method);
}

export interface UseModelParams {
  /** Trained query-tower folder; absent = back to the index's own encoder. */
  model?: string;
}

/** Sent from the client to the sidecar to make searches embed queries with a tuned model (or the base again). */
export namespace UseModelRequest {
  export const method = 'replug/useModel' as const;
  export const type = new RequestType<UseModelParams, ModelsResult, void>(method);
}

export interface StartLmParams {
  /** Program and arguments with {model}, {port}, {host} placeholders; absent = vLLM's OpenAI server. */
  command?: string[];
  model?: string;
  port?: number;
  cwd?: string;
}

export interface LmServerStatus {
  running: boolean;
  baseUrl?: string;
  models?: string[];
  pid?: number;
}

/**
 * Sent from the client to the sidecar to launch the LM server command and wait until it answers /v1/models
 * (vLLM can take minutes). Refused in an untrusted workspace. A second start stops the first server.
 */
export namespace StartLmRequest {
  export const method = 'replug/startLm' as const;
  export const type = new RequestType<StartLmParams, LmServerStatus, void>(method);
}

/** Sent from the client to the sidecar to stop the server it launched (its whole process group). */
export namespace StopLmRequest {
  export const method = 'replug/stopLm' as const;
  export const type = new RequestType0<LmServerStatus, void>(method);
}

/** Sent from the client to the sidecar when the user trusts the workspace: LM calls become allowed. */
export namespace WorkspaceTrustedNotification {
  export const method = 'replug/workspaceTrusted' as const;
  export const type = new NotificationType<void>(method);
}

// ---- Completions (REPLUG decoding) ----

export interface CompleteParams {
  lm: LmEndpoint;
  /** The text to continue: the code before the cursor. */
  prompt: string;
  /** The file the prompt comes from and its 1-based inclusive line span: passages overlapping it are never retrieved. */
  path?: string;
  promptLines?: [number, number];
  /** Default replug. */
  mode?: CompletionMode;
  /** Passages retrieved; default 4. */
  k?: number;
  /** Default 32. */
  maxTokens?: number;
  stop?: string[];
  /** Complete without passages (mode none) where the retriever abstains on the prompt (see SearchParams.abstain). */
  abstain?: boolean;
}

/** A passage behind a completion, with its weight in the ensemble (replug) or its share of the prompt (concat). */
export interface CompletionHit extends WireHit {
  weight: number;
}

export interface CompleteResult {
  text: string;
  finishReason: 'stop' | 'length';
  passages: CompletionHit[];
  /** LM requests the completion sent. */
  requests: number;
  /** The retriever abstained: the completion used no passage. */
  abstained?: boolean;
}

/**
 * Sent from the client to the sidecar for a greedy completion of `prompt`, REPLUG-ensembled over passages retrieved
 * from the index (with the tuned query model when one is in use). Cancelling the request stops generation at the
 * next token. Refused in an untrusted workspace (it calls the LM).
 */
export namespace CompleteRequest {
  export const method = 'replug/complete' as const;
  export const type = new RequestType<CompleteParams, CompleteResult, void>(method);
}
