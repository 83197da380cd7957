import { chunkLines, makePassage, splitLines, type ChunkOptions } from './chunk';
import { CorpusInputError } from './corpus-error';
import type { Passage, TokenCounter } from './passage';

/** One validated document of a corpus file (a CSV row, a JSON line) with the physical lines it spans. */
export interface CorpusRow {
  id: string;
  text: string;
  title?: string;
  startLine: number;
  endLine: number;
}

/**
 * A row as passages: one (path = the corpus file's absolute path, lines = the row's physical lines, docId = its id),
 * split into budget-sized pieces only when the row exceeds `opts.maxTokens`; the pieces keep the row's line range
 * and docId. A title becomes the passage's first line, as in the title + text passages of DPR/Contriever, so it
 * counts toward the budget and stays with the first piece.
 */
export function rowPassages(path: string, row: CorpusRow, countTokens: TokenCounter, opts: ChunkOptions): Passage[] {
  const lines = splitLines(row.title === undefined ? row.text : `${row.title}\n${row.text}`);
  // A window as long as the row itself: the row stays whole unless the token cap cuts it.
  const whole = { ...opts, windowLines: lines.length, strideLines: lines.length };
  return chunkLines(lines, whole, countTokens).map((piece) => makePassage(path, row.startLine, row.endLine, piece.text, row.id));
}

/** Rejects a second row with an id already seen in `file`, naming the line of the first. */
export class UniqueIds {
  private readonly firstLine = new Map<string, number>();
  constructor(private readonly file: string) {}

  add(id: string, line: number, column: string): void {
    const seenAt = this.firstLine.get(id);
    if (seenAt !== undefined) {
      throw new CorpusInputError(`duplicate id "${id}" (first used on line ${seenAt}); ids must be unique`, this.file, line, column);
    }
    this.firstLine.set(id, line);
  }
}
