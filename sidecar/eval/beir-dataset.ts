import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import * as path from 'node:path';
import { CsvError, parse } from 'csv-parse/sync';
import { CorpusInputError } from '../corpus/corpus-error';
import { jsonlRows } from '../corpus/jsonl';

/**
 * A retrieval benchmark in the BEIR layout, which CodeRAG-Bench also uses: DIR/corpus.jsonl (`_id`, `title`,
 * `text`), DIR/queries.jsonl (`_id`, `text`) and DIR/qrels/SPLIT.tsv (`query-id`, `corpus-id`, `score`: graded
 * relevance). Only queries with judgements in the split are evaluated, as BEIR does.
 */
export interface BeirDataset {
  dir: string;
  split: string;
  corpusFile: string;
  /** Judged queries in qrels order: id, text and the grade of each judged document. */
  queries: { id: string; text: string; qrels: Map<string, number> }[];
}

/** DIR/corpus.jsonl, after checking that DIR looks like a BEIR dataset. */
export function beirCorpusFile(dir: string): string {
  const file = path.resolve(dir, 'corpus.jsonl');
  if (!existsSync(file)) {
    throw new Error(`${dir} is not a BEIR dataset folder: it has no corpus.jsonl (expected corpus.jsonl, queries.jsonl and qrels/test.tsv)`);
  }
  return file;
}

export async function readBeirDataset(dir: string, split = 'test'): Promise<BeirDataset> {
  const corpusFile = beirCorpusFile(dir);
  const qrelsFile = path.resolve(dir, 'qrels', `${split}.tsv`);
  if (!existsSync(qrelsFile)) throw new Error(`${dir} has no qrels/${split}.tsv: pass --split with a split the dataset has`);
  const qrels = await readQrels(qrelsFile);
  const texts = new Map<string, string>();
  for await (const row of jsonlRows(path.resolve(dir, 'queries.jsonl'), (id) => qrels.has(id))) texts.set(row.id, row.text);
  const missing = [...qrels.keys()].filter((id) => !texts.has(id));
  if (missing.length > 0) {
    const some = missing.slice(0, 3).map((id) => JSON.stringify(id)).join(', ');
    throw new Error(`${qrelsFile} judges ${missing.length} queries that queries.jsonl does not have (${some}${missing.length > 3 ? ', …' : ''})`);
  }
  return { dir: path.resolve(dir), split, corpusFile, queries: [...qrels].map(([id, judged]) => ({ id, text: texts.get(id)!, qrels: judged })) };
}

/**
 * query-id → (corpus-id → grade). Tab-separated with BEIR's header row (query-id, corpus-id, score); read with a
 * CSV parser because BEIR writes it with Python's csv module, which quotes fields holding tabs or quotes.
 */
async function readQrels(file: string): Promise<Map<string, Map<string, number>>> {
  let records: { record: string[]; info: { lines: number } }[];
  try {
    records = parse(await readFile(file), { delimiter: '\t', bom: true, skip_empty_lines: true, relax_column_count: true, info: true }) as unknown as typeof records;
  } catch (err) {
    if (err instanceof CsvError) throw new CorpusInputError(`malformed TSV: ${err.message}`, file, (err as { lines?: number }).lines ?? 1);
    throw err;
  }
  const qrels = new Map<string, Map<string, number>>();
  records.forEach(({ record, info }, i) => {
    const line = info.lines;
    if (record.length < 3) throw new CorpusInputError('a qrels row needs query-id, corpus-id and score, separated by tabs', file, line);
    const [queryId, docId, score] = record.map((field) => field.trim());
    const grade = Number(score);
    if (score === '' || !Number.isFinite(grade)) {
      if (i === 0) return; // the header row
      throw new CorpusInputError(`score "${score}" is not a number`, file, line, 'score');
    }
    if (queryId === '' || docId === '') throw new CorpusInputError('empty query-id or corpus-id', file, line);
    const judged = qrels.get(queryId) ?? new Map<string, number>();
    judged.set(docId, grade);
    qrels.set(queryId, judged);
  });
  if (qrels.size === 0) throw new CorpusInputError('no judgements: expected rows of query-id, corpus-id and score', file, 1);
  return qrels;
}
