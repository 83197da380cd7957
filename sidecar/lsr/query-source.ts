import { readFile } from 'node:fs/promises';
import { estimateTokens } from '../corpus/chunk';
import { readCsvQueries } from '../corpus/csv';
import type { Passage } from '../corpus/passage';
import { commonFolder, queriesFromFiles, queriesFromRows, splitFiles, type TrainingQuery } from './training-queries';

export interface QuerySourceOptions {
  /** The seed's separate query corpus (CSV with id,text); without it queries are cut from the indexed files. */
  data?: string;
  /**
   * train: points in the training share of files; eval: points in the disjoint evaluation share (unseen files);
   * eval-points: other points of the training files whose continuations overlap no training continuation (the
   * retriever used on the workspace it was trained on, at places it never saw).
   */
  split: 'train' | 'eval' | 'eval-points';
  contextTokens: number;
  continuationTokens: number;
  /** Workspace queries sampled per held-out file. */
  perFile: number;
  /** Shares of indexed files whose points become training and evaluation queries. */
  trainFraction: number;
  evalFraction: number;
  /** Seeds the split of files into training and evaluation shares. */
  seed: number;
  /** Seeds where points fall inside files (default: `seed`); another value samples other points of the same files. */
  sampleSeed?: number;
}

export const DEFAULT_QUERY_SOURCE: Omit<QuerySourceOptions, 'data' | 'split'> = {
  contextTokens: 128,
  continuationTokens: 128,
  perFile: 4,
  trainFraction: 0.3,
  evalFraction: 0.1,
  seed: 0,
};

/**
 * Training or evaluation queries: the rows of `data`, or points sampled in a seeded share of the indexed files
 * (disjoint shares for training and evaluation, so evaluation queries were never trained on). Token budgets
 * are counted with the corpus's token estimate; the LM scorer checks its own budgets exactly.
 */
export async function loadQueries(passages: readonly Passage[], opts: QuerySourceOptions): Promise<TrainingQuery[]> {
  const cut = { contextTokens: opts.contextTokens, continuationTokens: opts.continuationTokens, countTokens: estimateTokens };
  if (opts.data) return queriesFromRows(await readCsvQueries(opts.data), opts.data, cut);
  const paths = [...new Set(passages.filter((p) => p.docId === undefined).map((p) => p.path))].sort();
  const base = commonFolder(paths);
  const split = splitFiles(paths, { train: opts.trainFraction, eval: opts.evalFraction }, opts.seed, base);
  const files = (
    await Promise.all(
      split[opts.split === 'eval' ? 'eval' : 'train'].map(async (p) => ({ path: p, text: await readFile(p, 'utf8').catch(() => '') })),
    )
  ).filter((f) => f.text !== '');
  const sampleSeed = opts.sampleSeed ?? opts.seed;
  const queries = queriesFromFiles(files, opts.perFile, sampleSeed, cut, base);
  if (opts.split !== 'eval-points') return queries;
  // `queries` are the training points: oversample others, keep those whose continuation overlaps none of them.
  const training = queries;
  const overlaps = (q: TrainingQuery) =>
    training.some((t) => t.path === q.path && t.continuationStart <= q.continuationEnd && q.continuationStart <= t.continuationEnd);
  return queriesFromFiles(files, EVAL_POINTS_OVERSAMPLING * opts.perFile, sampleSeed + 1, cut, base).filter((q) => !overlaps(q));
}

/** eval-points samples this many more points per file than training did; most overlap a training continuation. */
const EVAL_POINTS_OVERSAMPLING = 4;
