import * as path from 'node:path';
import type { ChunkOptions } from './chunk';
import { rowPassages, type CorpusRow } from './corpus-row';
import { csvRows } from './csv';
import { jsonlRows } from './jsonl';
import type { Passage, TokenCounter } from './passage';
import { inShard, type ShardSpec } from './shard';

/** The validated rows of a corpus file, streamed; with `shard`, only the rows of that shard (all rows are validated). */
export function corpusRows(file: string, shard?: ShardSpec): AsyncGenerator<CorpusRow> {
  const abs = path.resolve(file);
  if (/\.jsonl$/i.test(abs)) return jsonlRows(abs, inShard(shard));
  if (/\.csv$/i.test(abs)) return csvRows(abs, inShard(shard));
  throw new Error(`${file}: a corpus file must be .csv (columns id,text[,title]) or .jsonl (fields _id, text[, title])`);
}

/** The passages of each row of a corpus file, row by row, in file order. */
export async function* corpusPassages(
  file: string,
  countTokens: TokenCounter,
  opts: ChunkOptions,
  shard?: ShardSpec,
): AsyncGenerator<Passage[]> {
  const abs = path.resolve(file);
  for await (const row of corpusRows(abs, shard)) yield rowPassages(abs, row, countTokens, opts);
}

/** Reads a whole corpus file through, so a bad one fails before anything is indexed; returns the rows of `shard`. */
export async function validateCorpus(file: string, shard?: ShardSpec): Promise<number> {
  let rows = 0;
  for await (const _row of corpusRows(file, shard)) rows++;
  return rows;
}
