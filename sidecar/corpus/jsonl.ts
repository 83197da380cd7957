import { CorpusInputError } from './corpus-error';
import { UniqueIds, type CorpusRow } from './corpus-row';
import { StreamedFile } from './streamed-file';

const NEWLINE = 0x0a;
const BOM = Buffer.from([0xef, 0xbb, 0xbf]);

/**
 * Streams the documents of a JSON Lines corpus in the BEIR layout (`corpus.jsonl`: one object per line with `_id`,
 * `text` and an optional `title`), never holding the whole file. Blank lines are allowed; a document with a title
 * and no text is its title. Every line is validated as it passes (the first problem throws a `CorpusInputError`
 * naming the file, line and field); only documents whose id `accept`s are yielded and checked for duplicates.
 */
export async function* jsonlRows(file: string, accept: (id: string) => boolean = () => true): AsyncGenerator<CorpusRow> {
  const input = new StreamedFile(file);
  const ids = new UniqueIds(file);
  let documents = 0;
  let offset = 0;
  let lineStart = 0;
  let pending: Buffer[] = [];
  function* lineDone(bytes: Buffer): Generator<CorpusRow> {
    const line = input.lineAt(lineStart);
    const text = (lineStart === 0 && bytes.subarray(0, 3).equals(BOM) ? bytes.subarray(3) : bytes).toString('utf8');
    if (text.trim() === '') return;
    const row = parseDocument(text, file, line);
    documents++;
    if (!accept(row.id)) return;
    ids.add(row.id, line, '_id');
    yield row;
  }
  for await (const chunk of input.chunks()) {
    let start = 0;
    for (let nl = chunk.indexOf(NEWLINE); nl >= 0; nl = chunk.indexOf(NEWLINE, start)) {
      pending.push(chunk.subarray(start, nl));
      yield* lineDone(Buffer.concat(pending));
      pending = [];
      start = nl + 1;
      lineStart = offset + start;
    }
    if (start < chunk.length) pending.push(chunk.subarray(start));
    offset += chunk.length;
  }
  if (pending.length > 0) yield* lineDone(Buffer.concat(pending));
  if (documents === 0) throw new CorpusInputError('the file has no documents; each line must be a JSON object with _id and text', file, 1);
}

function parseDocument(text: string, file: string, line: number): CorpusRow {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    throw new CorpusInputError(`not valid JSON (${(err as Error).message}); each line must be one JSON object`, file, line);
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) {
    throw new CorpusInputError('each line must be a JSON object with _id and text', file, line);
  }
  const { _id: rawId, text: body = '', title = '' } = doc as Record<string, unknown>;
  const id = typeof rawId === 'number' ? String(rawId) : typeof rawId === 'string' ? rawId.trim() : '';
  if (id === '') throw new CorpusInputError('missing or empty _id (a string); give every document a unique _id', file, line, '_id');
  for (const [field, value] of [['text', body], ['title', title]] as const) {
    if (typeof value !== 'string') throw new CorpusInputError(`${field} of document "${id}" is not a string`, file, line, field);
  }
  const [t, b] = [(title as string).trim(), body as string];
  if (b.trim() === '' && t === '') {
    throw new CorpusInputError(`document "${id}" has no title or text; remove it or fill in its text`, file, line, 'text');
  }
  const row: CorpusRow = { id, text: b.trim() === '' ? t : b, startLine: line, endLine: line };
  if (t !== '' && b.trim() !== '') row.title = t;
  return row;
}
