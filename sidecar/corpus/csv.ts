import { resolve } from 'node:path';
import { pipeline, Readable } from 'node:stream';
import { CsvError, parse, type CsvErrorCode, type InfoRecord } from 'csv-parse';
import { CorpusInputError } from './corpus-error';
import { UniqueIds, type CorpusRow } from './corpus-row';
import { StreamedFile } from './streamed-file';

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
 * Streams the rows of a CSV with a header row holding at least `id` and `text` (other columns are allowed and
 * ignored, except `title`), never holding the whole file. Every row is validated as it passes: the first problem
 * throws a `CorpusInputError` naming the file, line and column. Empty lines between records are allowed. Only rows
 * whose id `accept`s are yielded (and checked for duplicate ids among themselves); the others are still validated.
 */
export async function* csvRows(file: string, accept: (id: string) => boolean = () => true): AsyncGenerator<CorpusRow> {
  const input = new StreamedFile(file);
  let lastRecordEnd = 0;
  const parser = parse({
    bom: true,
    info: true,
    skip_empty_lines: true,
    // Listed explicitly so a file that mixes CRLF and LF line ends still splits at both.
    record_delimiter: ['\r\n', '\n'],
    on_record: (record, context) => {
      lastRecordEnd = context.bytes;
      return record;
    },
  });
  // Errors of the read (I/O, invalid UTF-8) reach the parser and so the loop below.
  pipeline(Readable.from(input.chunks()), parser, () => undefined);

  let col: { id: number; text: number; title: number } | undefined;
  let rows = 0;
  // Rows' lines come from csv-parse's byte offsets: its own line count double-counts CRLF inside quoted fields.
  let prevEnd = 0;
  const ids = new UniqueIds(file);
  try {
    for await (const { record, info } of parser as AsyncIterable<ParsedRecord>) {
      if (!col) {
        col = columnsOf(record, file);
        prevEnd = info.bytes;
        continue;
      }
      const startLine = input.lineAt(skipBlankLines(input, prevEnd));
      const endLine = input.lineAt(lastContentByte(input, info.bytes));
      prevEnd = info.bytes;
      const id = record[col.id].trim();
      const text = record[col.text];
      if (id === '') throw new CorpusInputError('empty id; give every row a unique id', file, startLine, 'id');
      if (text.trim() === '') {
        throw new CorpusInputError(`empty text in row "${id}"; remove the row or fill in its text`, file, startLine, 'text');
      }
      rows++;
      if (!accept(id)) continue;
      ids.add(id, startLine, 'id');
      const row: CorpusRow = { id, text, startLine, endLine };
      const title = col.title >= 0 ? record[col.title].trim() : '';
      if (title !== '') row.title = title;
      yield row;
    }
  } catch (err) {
    if (!(err instanceof CsvError)) throw err;
    // csv-parse reports an unclosed quote at the end of the file; the record that opened it is more useful.
    const line =
      err.code === 'CSV_QUOTE_NOT_CLOSED' ? input.lineAt(skipBlankLines(input, lastRecordEnd)) : ((err as { lines?: number }).lines ?? 1);
    const hint = FIX_HINTS[err.code];
    throw new CorpusInputError(`malformed CSV: ${err.message}${hint ? `; ${hint}` : ''}`, file, line);
  }
  if (!col) throw new CorpusInputError('the file is empty; it needs a header row with columns id,text', file, 1);
  if (rows === 0) throw new CorpusInputError('the file has a header but no rows', file, 2);
}

/** Column positions from the header row, or an error naming what is missing. */
function columnsOf(record: string[], file: string): { id: number; text: number; title: number } {
  const header = record.map((name) => name.trim());
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
  return { id: header.indexOf('id'), text: header.indexOf('text'), title: header.indexOf('title') };
}

/** Training queries from a CSV with columns id,text (same validation as corpora); `line` is the row's first line. */
export async function readCsvQueries(file: string): Promise<{ id: string; text: string; line: number }[]> {
  const queries = [];
  for await (const row of csvRows(resolve(file))) queries.push({ id: row.id, text: row.text, line: row.startLine });
  return queries;
}

/** Offset of the first byte after `offset` that is not part of an empty line (csv-parse skips those). */
function skipBlankLines(input: StreamedFile, offset: number): number {
  for (let b = input.byteAt(offset); b === 0x0a || b === 0x0d; b = input.byteAt(++offset));
  return offset;
}

/** Offset of a record's last byte, given csv-parse's offset just past the record and its line end. */
function lastContentByte(input: StreamedFile, end: number): number {
  if (input.byteAt(end - 1) === 0x0a) end--;
  if (input.byteAt(end - 1) === 0x0d) end--;
  return end - 1;
}
