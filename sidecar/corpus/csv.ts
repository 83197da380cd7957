import { isUtf8 } from 'node:buffer';
import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { CsvError, parse, type CsvErrorCode, type InfoRecord } from 'csv-parse/sync';
import { chunkLines, makePassage, splitLines, type ChunkOptions } from './chunk';
import type { Passage, TokenCounter } from './passage';

/** A corpus or training file the user must fix; `line` is 1-based, `column` names the CSV column when one is at fault. */
export class CorpusInputError extends Error {
  override readonly name = 'CorpusInputError';
  constructor(
    message: string,
    readonly file: string,
    readonly line: number,
    readonly column?: string,
  ) {
    super(`${file}:${line}: ${message}`);
  }
}

/** One validated CSV record with the physical lines it spans (a quoted field may hold newlines). */
interface CsvRow {
  id: string;
  text: string;
  title?: string;
  startLine: number;
  endLine: number;
}

/** csv-parse's output with `info: true`; `info.bytes` is the offset just past the record and its line end. */
interface ParsedRecord {
  record: string[];
  info: InfoRecord;
}

const REQUIRED_COLUMNS = ['id', 'text'] as const;

const FIX_HINTS: Partial<Record<CsvErrorCode, string>> = {
  CSV_QUOTE_NOT_CLOSED: 'close the quoted field, and write quotes inside a quoted field as ""',
  CSV_INVALID_CLOSING_QUOTE: 'quote the whole field and write quotes inside it as ""',
  CSV_RECORD_INCONSISTENT_FIELDS_LENGTH: 'give every row as many fields as the header; quote fields that contain commas',
};

/**
 * Reads and validates a CSV with a header row holding at least `id` and `text` (other columns are allowed and
 * ignored, except `title`). All rows are checked before anything is returned: the first problem throws a
 * `CorpusInputError` naming the file, line and column. Empty lines between records are allowed.
 */
async function readCsvRows(file: string): Promise<CsvRow[]> {
  const bytes = await readFile(file);
  if (!isUtf8(bytes)) {
    throw new CorpusInputError('the file is not valid UTF-8; re-save it as UTF-8', file, firstInvalidUtf8Line(bytes));
  }
  // Rows' lines come from csv-parse's byte offsets: its own line count double-counts CRLF inside quoted fields.
  const lines = new LineCounter(bytes);
  let lastRecordEnd = 0;
  let records: ParsedRecord[];
  try {
    records = parse(bytes, {
      bom: true,
      info: true,
      skip_empty_lines: true,
      // Listed explicitly so a file that mixes CRLF and LF line ends still splits at both.
      record_delimiter: ['\r\n', '\n'],
      on_record: (record, context) => {
        lastRecordEnd = context.bytes;
        return record;
      },
    }) as unknown as ParsedRecord[];
  } catch (err) {
    if (!(err instanceof CsvError)) throw err;
    // csv-parse reports an unclosed quote at the end of the file; the record that opened it is more useful.
    const line =
      err.code === 'CSV_QUOTE_NOT_CLOSED'
        ? lines.lineAt(skipBlankLines(bytes, lastRecordEnd))
        : ((err as { lines?: number }).lines ?? 1);
    const hint = FIX_HINTS[err.code];
    throw new CorpusInputError(`malformed CSV: ${err.message}${hint ? `; ${hint}` : ''}`, file, line);
  }

  if (records.length === 0) {
    throw new CorpusInputError('the file is empty; it needs a header row with columns id,text', file, 1);
  }
  const header = records[0].record.map((name) => name.trim());
  const missing = REQUIRED_COLUMNS.filter((name) => !header.includes(name));
  if (missing.length > 0) {
    throw new CorpusInputError(
      `header lacks column(s) ${missing.join(', ')}; found: ${header.join(', ')}. ` +
        'The first row must name the columns, at least id and text',
      file,
      1,
      missing[0],
    );
  }
  const twice = header.find((name, i) => header.indexOf(name) !== i);
  if (twice !== undefined) throw new CorpusInputError(`header names column "${twice}" twice`, file, 1, twice);
  if (records.length === 1) throw new CorpusInputError('the file has a header but no rows', file, 2);

  const col = { id: header.indexOf('id'), text: header.indexOf('text'), title: header.indexOf('title') };
  const firstLineOfId = new Map<string, number>();
  const rows: CsvRow[] = [];
  let prevEnd = records[0].info.bytes;
  for (const { record, info } of records.slice(1)) {
    const startLine = lines.lineAt(skipBlankLines(bytes, prevEnd));
    const endLine = lines.lineAt(lastContentByte(bytes, info.bytes));
    prevEnd = info.bytes;
    const id = record[col.id].trim();
    const text = record[col.text];
    if (id === '') throw new CorpusInputError('empty id; give every row a unique id', file, startLine, 'id');
    if (text.trim() === '') {
      throw new CorpusInputError(`empty text in row "${id}"; remove the row or fill in its text`, file, startLine, 'text');
    }
    const seenAt = firstLineOfId.get(id);
    if (seenAt !== undefined) {
      const message = `duplicate id "${id}" (first used on line ${seenAt}); ids must be unique`;
      throw new CorpusInputError(message, file, startLine, 'id');
    }
    firstLineOfId.set(id, startLine);
    const row: CsvRow = { id, text, startLine, endLine };
    const title = col.title >= 0 ? record[col.title].trim() : '';
    if (title !== '') row.title = title;
    rows.push(row);
  }
  return rows;
}

/**
 * A CSV corpus as passages: one per row (path = the CSV's absolute path, lines = the record's physical lines,
 * docId = the id column), split into budget-sized pieces only when the row exceeds `opts.maxTokens`; the pieces keep
 * the row's line range and docId. A non-empty `title` column becomes the passage's first line, as in the
 * title + text passages of DPR/Contriever, so it counts toward the budget and stays with the first piece.
 */
export async function readCsvPassages(file: string, countTokens: TokenCounter, opts: ChunkOptions): Promise<Passage[]> {
  const path = resolve(file);
  const passages: Passage[] = [];
  for (const row of await readCsvRows(path)) {
    const lines = splitLines(row.title === undefined ? row.text : `${row.title}\n${row.text}`);
    // A window as long as the row itself: the row stays whole unless the token cap cuts it.
    const whole = { ...opts, windowLines: lines.length, strideLines: lines.length };
    for (const piece of chunkLines(lines, whole, countTokens)) {
      passages.push(makePassage(path, row.startLine, row.endLine, piece.text, row.id));
    }
  }
  return passages;
}

/** Training queries from a CSV with columns id,text (same validation as corpora); `line` is the row's first line. */
export async function readCsvQueries(file: string): Promise<{ id: string; text: string; line: number }[]> {
  const rows = await readCsvRows(resolve(file));
  return rows.map((row) => ({ id: row.id, text: row.text, line: row.startLine }));
}

/** 1-based line numbers of byte offsets, for offsets visited in increasing order (one pass over the file). */
class LineCounter {
  private offset = 0;
  private line = 1;
  constructor(private readonly bytes: Uint8Array) {}

  lineAt(offset: number): number {
    for (; this.offset < offset; this.offset++) if (this.bytes[this.offset] === 0x0a) this.line++;
    return this.line;
  }
}

/** Offset of the first byte after `offset` that is not part of an empty line (csv-parse skips those). */
function skipBlankLines(bytes: Uint8Array, offset: number): number {
  while (offset < bytes.length && (bytes[offset] === 0x0a || bytes[offset] === 0x0d)) offset++;
  return offset;
}

/** Offset of a record's last byte, given csv-parse's offset just past the record and its line end. */
function lastContentByte(bytes: Uint8Array, end: number): number {
  if (bytes[end - 1] === 0x0a) end--;
  if (bytes[end - 1] === 0x0d) end--;
  return end - 1;
}

function firstInvalidUtf8Line(bytes: Buffer): number {
  // A multi-byte UTF-8 sequence never contains a newline byte, so each line can be checked on its own.
  let line = 1;
  for (let start = 0; start < bytes.length; line++) {
    const nl = bytes.indexOf(0x0a, start);
    const end = nl === -1 ? bytes.length : nl;
    if (!isUtf8(bytes.subarray(start, end))) return line;
    start = end + 1;
  }
  return line;
}
