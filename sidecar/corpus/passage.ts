/** A retrievable unit of text: a window of a source file, or a row of a CSV corpus. */
export interface Passage {
  /** Stable id: derived from source, line range and content, so an unchanged window keeps its id across scans. */
  id: string;
  /** Absolute path of the file the passage comes from (for CSV rows: the CSV file). */
  path: string;
  /** 1-based inclusive line range inside `path`. */
  startLine: number;
  endLine: number;
  text: string;
  /** sha256 (hex, first 16 bytes) of `text`; decides whether the passage must be re-embedded. */
  hash: string;
  /** For CSV rows: the value of the `id` column. */
  docId?: string;
}

/** Counts the tokens of a text as the encoder will see them; used to cap passage size. */
export type TokenCounter = (text: string) => number;
