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

export type SearchMode = 'hybrid' | 'dense' | 'lexical';

/** Sent once in `initialize`; changing any of it requires a sidecar restart. */
export interface InitializationOptions {
  /** Where the index lives (the extension's workspace storage, never inside the repository). */
  indexDir: string;
  /** Sentence-encoder model directory or name; empty = lexical search only. */
  encoderModel?: string;
  encoderDevice?: 'auto' | 'cpu' | 'cuda';
  /** Passage windowing, forwarded to the engine's ChunkOptions. */
  chunking?: { windowLines?: number; strideLines?: number; maxTokens?: number };
  /** Glob patterns relative to each root. */
  include?: string[];
  exclude?: string[];
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

export interface IndexStatusResult {
  dir: string;
  files: number;
  passages: number;
  dense: boolean;
  encoder?: string;
  updatedAt?: string;
  /** True while an index job is running. */
  busy: boolean;
}

/** Sent from the client to the sidecar to ask what the index holds. */
export namespace IndexStatusRequest {
  export const method = 'replug/indexStatus' as const;
  export const type = new RequestType0<IndexStatusResult, void>(method);
}

export interface IndexParams extends WorkDoneProgressParams {
  roots: string[];
  /** Drop the existing index first (Rebuild Index). */
  rebuild?: boolean;
}

/** What one finished index job did (mirrors the engine's IndexReport). */
export interface IndexReport {
  files: number;
  filesChanged: number;
  filesRemoved: number;
  passages: number;
  passagesEmbedded: number;
  skipped: Record<string, number>;
  seconds: number;
  /** Why the stored index was discarded and rebuilt (settings changed, unreadable), if it was. */
  rebuilt?: string;
}

export type IndexResult = { cancelled: true } | ({ cancelled: false } & IndexReport);

/**
 * Sent from the client to the sidecar to bring the index up to date with `roots`. It answers when the job ends;
 * the sidecar keeps answering other requests meanwhile. Cancelling the request (or the work-done progress)
 * stops the job at the next batch and answers `cancelled: true`. Jobs run one after another, never overlapped.
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
}

/** Sent from the client to the sidecar to retrieve the top-k passages for a query. */
export namespace SearchRequest {
  export const method = 'replug/search' as const;
  export const type = new RequestType<SearchParams, WireHit[], void>(method);
}

export type Health = 'ok' | 'warning' | 'error';

export interface StatusParams {
  health: Health;
  /** True while an index job runs. */
  busy: boolean;
  message?: string;
  files?: number;
  passages?: number;
}

/** Sent from the sidecar to the client whenever its state changes; drives the status bar. */
export namespace StatusNotification {
  export const method = 'replug/status' as const;
  export const type = new NotificationType<StatusParams>(method);
}
