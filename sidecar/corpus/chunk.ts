import { createHash } from 'node:crypto';
import type { Passage, TokenCounter } from './passage';

/** How source text is cut into passages. Part of the index manifest through `chunkingFingerprint`. */
export interface ChunkOptions {
  /** Lines per window (before the token cap shortens it). */
  windowLines: number;
  /** Lines between the starts of consecutive windows; `strideLines < windowLines` gives overlap. */
  strideLines: number;
  /** Token budget of one passage, as counted by the `TokenCounter` handed to the chunker. */
  maxTokens: number;
}

/** 20-line windows every 10 lines as in RepoCoder/RepoEval, capped at REPLUG's 128-token documents. */
export const DEFAULT_CHUNKING: Readonly<ChunkOptions> = Object.freeze({ windowLines: 20, strideLines: 10, maxTokens: 128 });

/** Changes whenever the same files would be cut differently. The token counter is identified by the encoder fingerprint. */
export function chunkingFingerprint(opts: ChunkOptions): string {
  return `lines-w${opts.windowLines}-s${opts.strideLines}-t${opts.maxTokens}`;
}

/** sha256 of the text, first 16 bytes in hex. */
export function textHash(text: string): string {
  return createHash('sha256').update(text).digest('hex').slice(0, 32);
}

/** Stable passage id: the same content at the same place keeps its id across scans. */
export function passageId(path: string, startLine: number, endLine: number, hash: string): string {
  return createHash('sha256').update(`${path}\0${startLine}\0${endLine}\0${hash}`).digest('hex').slice(0, 32);
}

/** Builds a passage, deriving `hash` and `id` from its content and place. */
export function makePassage(path: string, startLine: number, endLine: number, text: string, docId?: string): Passage {
  const hash = textHash(text);
  const passage: Passage = { id: passageId(path, startLine, endLine, hash), path, startLine, endLine, text, hash };
  if (docId !== undefined) passage.docId = docId;
  return passage;
}

/** A piece of a line list: lines `first..last` (0-based, inclusive) joined with '\n', or a part of one over-long line. */
export interface LinePiece {
  first: number;
  last: number;
  text: string;
}

function checkOptions(opts: ChunkOptions): void {
  for (const key of ['windowLines', 'strideLines', 'maxTokens'] as const) {
    const v = opts[key];
    if (!Number.isInteger(v) || v < 1) throw new RangeError(`chunking option ${key} must be a positive integer, got ${v}`);
  }
  if (opts.strideLines > opts.windowLines) {
    throw new RangeError(
      `chunking option strideLines (${opts.strideLines}) must not exceed windowLines (${opts.windowLines}), ` +
        'or lines between windows would be lost',
    );
  }
}

/** Splits text into lines, accepting \n and \r\n; a final newline does not open an extra empty line. */
export function splitLines(text: string): string[] {
  const lines = text.split(/\r?\n/);
  if (lines.length > 1 && lines[lines.length - 1] === '') lines.pop();
  return lines;
}

/**
 * Cuts one line whose token count exceeds `maxTokens` into consecutive pieces that each fit, never inside a surrogate
 * pair, preferring to end a piece after whitespace. Each piece's end is found by galloping from its start (probe
 * lengths double from `maxTokens` characters), then narrowed by steps that alternate between interpolating on the
 * token counts and bisecting, so every countTokens call reads at most twice the piece it decides: linear in the
 * line's length, where counting the whole remainder for each piece was quadratic (a 400 KB CSV cell took minutes).
 */
export function splitLongLine(line: string, maxTokens: number, countTokens: TokenCounter): string[] {
  const pieces: string[] = [];
  // The previous piece's longest fitting length: text tends to keep its density, so it is the first guess.
  let hint = maxTokens;
  let start = 0;
  while (start < line.length) {
    const count = (end: number) => countTokens(line.slice(start, end));
    // Invariant: a piece ending at `good` fits; one ending at `bad` does not (line.length + 1: nothing is too long).
    let good = start;
    let goodCount = 0;
    let bad = line.length + 1;
    let badCount = Infinity;
    for (let step = hint; good < line.length; step = good === start + hint ? Math.max(1, hint >> 3) : step * 2) {
      const probe = codePointBoundary(line, Math.min(line.length, good + step));
      const n = count(probe);
      if (n > maxTokens) {
        [bad, badCount] = [probe, n];
        break;
      }
      [good, goodCount] = [probe, n];
    }
    for (let interpolate = true; bad - good > 1; interpolate = !interpolate) {
      const share = interpolate && badCount !== Infinity ? (maxTokens - goodCount + 0.5) / (badCount - goodCount) : 0.5;
      const guess = good + Math.min(bad - good - 1, Math.max(1, Math.round((bad - good) * share)));
      // Inside a surrogate pair: its end, or its start when the end is `bad` (then nothing lies between).
      let mid = codePointBoundary(line, guess);
      if (mid >= bad) mid = guess - 1;
      if (mid <= good) break;
      const n = count(mid);
      if (n <= maxTokens) [good, goodCount] = [mid, n];
      else [bad, badCount] = [mid, n];
    }
    if (good > start) hint = good - start;
    // At least one code point per piece, so the loop always advances.
    let end = good > start ? good : codePointBoundary(line, start + 1);
    if (end < line.length) {
      // Back up to a whitespace boundary when one is in the second half, so identifiers stay whole.
      for (let i = end; i > start + (end - start) / 2; i--) {
        if (/\s/.test(line[i - 1])) {
          end = i;
          break;
        }
      }
    }
    pieces.push(line.slice(start, end));
    start = end;
  }
  return pieces;
}

/** `at`, or the next index when `at` falls between the two halves of a surrogate pair. */
function codePointBoundary(text: string, at: number): number {
  const high = text.charCodeAt(at - 1);
  const low = text.charCodeAt(at);
  return high >= 0xd800 && high <= 0xdbff && low >= 0xdc00 && low <= 0xdfff ? at + 1 : at;
}

/**
 * Sliding windows over `lines`: a window starts every `strideLines` lines and holds up to `windowLines` lines, fewer
 * when that would exceed `maxTokens`. When the cap cuts a window shorter than the stride, the next window starts right
 * after it, so no line is ever left out. A line alone over the budget becomes its own pieces (see `splitLongLine`).
 * The last window reaches the end of the input. Blank-only pieces are dropped. Each line is counted once.
 */
export function chunkLines(lines: readonly string[], opts: ChunkOptions, countTokens: TokenCounter): LinePiece[] {
  checkOptions(opts);
  const tokens = lines.map((line) => countTokens(line));
  const pieces: LinePiece[] = [];
  const push = (first: number, last: number, text: string) => {
    if (text.trim() !== '') pieces.push({ first, last, text });
  };
  let start = 0;
  while (start < lines.length) {
    if (tokens[start] > opts.maxTokens) {
      for (const part of splitLongLine(lines[start], opts.maxTokens, countTokens)) push(start, start, part);
      if (start === lines.length - 1) break;
      start += 1;
      continue;
    }
    let end = start;
    let budget = opts.maxTokens - tokens[start];
    const limit = Math.min(lines.length, start + opts.windowLines) - 1;
    while (end < limit && tokens[end + 1] <= budget) {
      end += 1;
      budget -= tokens[end];
    }
    push(start, end, lines.slice(start, end + 1).join('\n'));
    if (end === lines.length - 1) break;
    // A window stopped by an over-long line would only repeat a shorter copy of itself before that line: jump to it.
    start = tokens[end + 1] > opts.maxTokens ? end + 1 : Math.min(start + opts.strideLines, end + 1);
  }
  return pieces;
}

/**
 * Cuts a source file into passages (1-based inclusive line numbers; pieces of one over-long line share its number).
 * Line endings are normalised to '\n' in passage text. Identical pieces at the same place (e.g. a long line of
 * repeated text) would share an id, so only the first is kept.
 */
export function chunkText(input: { path: string; text: string }, opts: ChunkOptions, countTokens: TokenCounter): Passage[] {
  const seen = new Set<string>();
  const passages: Passage[] = [];
  for (const piece of chunkLines(splitLines(input.text), opts, countTokens)) {
    const passage = makePassage(input.path, piece.first + 1, piece.last + 1, piece.text);
    if (seen.has(passage.id)) continue;
    seen.add(passage.id);
    passages.push(passage);
  }
  return passages;
}

// Word pieces as BERT's basic tokenizer + WordPiece tend to produce them on code: identifier parts split at
// camelCase / snake_case / digit boundaries, every punctuation or symbol character on its own, CJK one per character.
const PIECE = /\p{Lu}+(?!\p{Ll})|\p{Lu}?\p{Ll}+|\p{N}+|\p{Script=Han}|\p{L}+|[^\s\p{L}\p{N}]/gu;

/**
 * Deterministic ESTIMATE of a BERT WordPiece token count, for when no encoder is configured. Not exact: real
 * vocabularies split rare long words into more pieces, which the extra count for long parts approximates.
 */
export const estimateTokens: TokenCounter = (text) => {
  let count = 0;
  for (const m of text.matchAll(PIECE)) {
    const len = m[0].length;
    count += len <= 5 ? 1 : Math.ceil(len / 5);
  }
  return count;
};
