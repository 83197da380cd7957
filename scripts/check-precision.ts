/**
 * Does int8 hold an encoder's quality? On a real code corpus (default: this project's sidecar/ folder):
 *  1. agreement: the cosine between each passage's (and query's) fp32 and int8 vectors: minimum, 1st percentile, mean;
 *  2. retrieval: nDCG@10 at fp32 and at int8 on code-completion queries cut from the corpus's files (the code before
 *     a line; gold = passages in other files that contain a line of what follows, as `eval`'s "contains" gold), with
 *     the paired difference and its standard error; and how much the two top-10 lists overlap.
 * It passes when every cosine is ≥ 0.99 and the nDCG difference is within two standard errors (or below 0.005).
 *
 * Run it on the encoder you use (all-MiniLM-L6-v2 once you have it: `--model DIR`). Without --model it uses a
 * MiniLM-shape random BERT (with noShift, so its vectors differ by content): that checks the int8 arithmetic at
 * the real shape, but not how a trained model's outlier activations quantise.
 *
 *   npm run check:precision -- [ROOT] [--model DIR] [--max-queries N]
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import type { Passage } from '../sidecar/corpus/passage';
import { loadEncoder, type RuntimeEncoder } from '../sidecar/encoder/ort-encoder';
import { goldByContent } from '../sidecar/eval/evaluate';
import { ndcgAt, pairedDifference } from '../sidecar/eval/ranking-metrics';
import { WorkspaceIndex } from '../sidecar/index/workspace-index';
import { ownSource } from '../sidecar/lsr/lsr-trainer';
import { DEFAULT_QUERY_SOURCE, loadQueries } from '../sidecar/lsr/query-source';
import { makeTinyBert, MINILM_SHAPE } from './make-tiny-bert';

const K = 10;
const MIN_COSINE = 0.99;

export interface PrecisionReport {
  passages: number;
  queries: number;
  cosine: { min: number; p1: number; mean: number };
  ndcg: { fp32: number; int8: number; difference: number; stdErr: number };
  /** Mean share of the fp32 top-10 that the int8 top-10 also holds. */
  top10Overlap: number;
  pass: boolean;
}

/** Compares `model` at fp32 and int8 on the files under `root`. */
export async function checkPrecision(opts: { model: string; root: string; maxQueries?: number; threads?: number }): Promise<PrecisionReport> {
  const work = await mkdtemp(path.join(os.tmpdir(), 'replug-check-precision-'));
  const fp32 = await loadEncoder({ model: opts.model, device: 'cpu', precision: 'fp32', threads: opts.threads });
  const int8 = await loadEncoder({ model: opts.model, device: 'cpu', precision: 'int8', threads: opts.threads });
  try {
    const passages = await cutPassages(fp32, opts.root, work);
    const queries = (await loadQueries(passages, { ...DEFAULT_QUERY_SOURCE, split: 'train', trainFraction: 1, evalFraction: 0 }))
      .map((query) => ({ query, gold: goldByContent(query, passages, ownSource(query)) }))
      .filter((q) => q.gold.size > 0)
      .slice(0, opts.maxQueries);
    if (queries.length === 0) throw new Error(`no queries with gold passages could be cut from ${opts.root}: use a larger code folder`);
    const texts = passages.map((p) => p.text);
    const contexts = queries.map((q) => q.query.context);
    const [docs32, docs8, q32, q8] = [await fp32.embed(texts), await int8.embed(texts), await fp32.embed(contexts), await int8.embed(contexts)];

    const cosines = [...docs32.map((v, i) => dot(v, docs8[i])), ...q32.map((v, i) => dot(v, q8[i]))].sort((a, b) => a - b);
    const ndcg32: number[] = [];
    const ndcg8: number[] = [];
    let overlap = 0;
    queries.forEach(({ query, gold }, i) => {
      const exclude = ownSource(query);
      const top32 = topIds(q32[i], docs32, passages, exclude);
      const top8 = topIds(q8[i], docs8, passages, exclude);
      ndcg32.push(ndcgAt(top32, gold, K));
      ndcg8.push(ndcgAt(top8, gold, K));
      overlap += top8.filter((id) => top32.includes(id)).length / K;
    });
    const { mean: difference, stdErr } = pairedDifference(ndcg8, ndcg32);
    const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
    const cosine = { min: cosines[0], p1: cosines[Math.floor(cosines.length / 100)], mean: mean(cosines) };
    return {
      passages: passages.length,
      queries: queries.length,
      cosine,
      ndcg: { fp32: mean(ndcg32), int8: mean(ndcg8), difference, stdErr },
      top10Overlap: overlap / queries.length,
      pass: cosine.min >= MIN_COSINE && (Math.abs(difference) <= 2 * stdErr || Math.abs(difference) < 0.005),
    };
  } finally {
    await Promise.all([fp32.dispose(), int8.dispose()]);
    await rm(work, { recursive: true, force: true });
  }
}

/** The passages `index` cuts from `root` with this encoder's tokenizer. */
async function cutPassages(encoder: RuntimeEncoder, root: string, work: string): Promise<Passage[]> {
  const index = await WorkspaceIndex.open(path.join(work, 'index'), { encoder });
  try {
    await index.update([root]);
    return index.passages();
  } finally {
    await index.close();
  }
}

function topIds(query: Float32Array, docs: Float32Array[], passages: Passage[], exclude: (p: Passage) => boolean): string[] {
  return docs
    .map((d, i) => ({ i, score: dot(query, d) }))
    .filter(({ i }) => !exclude(passages[i]))
    .sort((a, b) => b.score - a.score)
    .slice(0, K)
    .map(({ i }) => passages[i].id);
}

function dot(a: Float32Array, b: Float32Array): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * b[i];
  return s;
}

async function main(): Promise<void> {
  const { values, positionals } = parseArgs({ allowPositionals: true, options: { model: { type: 'string' }, 'max-queries': { type: 'string' } } });
  const root = path.resolve(positionals[0] ?? 'sidecar');
  const work = await mkdtemp(path.join(os.tmpdir(), 'replug-check-model-'));
  try {
    const model = values.model ?? (await makeTinyBert(path.join(work, 'minilm'), { ...MINILM_SHAPE, seed: 1, noShift: true }));
    const r = await checkPrecision({ model, root, maxQueries: values['max-queries'] ? Number(values['max-queries']) : undefined });
    const f = (x: number) => x.toFixed(4);
    console.log(`model: ${values.model ?? 'MiniLM-shape random BERT (noShift)'}; corpus: ${root} (${r.passages} passages, ${r.queries} queries with gold)`);
    console.log(`cosine fp32 ↔ int8 (passages and queries): min ${f(r.cosine.min)}, 1st percentile ${f(r.cosine.p1)}, mean ${f(r.cosine.mean)} (need ≥ ${MIN_COSINE})`);
    console.log(`nDCG@${K}: fp32 ${f(r.ndcg.fp32)}, int8 ${f(r.ndcg.int8)}, difference ${f(r.ndcg.difference)} ± ${f(r.ndcg.stdErr)} (paired SE); top-${K} overlap ${(100 * r.top10Overlap).toFixed(1)}%`);
    console.log(r.pass ? 'PASS: int8 holds quality on this corpus' : 'FAIL: use --precision fp32 with this model');
    if (!r.pass) process.exitCode = 1;
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

if (require.main === module) {
  main().catch((err) => {
    console.error(err);
    process.exitCode = 1;
  });
}
