import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ndcgAt, pairedDifference, recallAt, reciprocalRank } from '../sidecar/eval/ranking-metrics';
import { bitsPerByte, ensembleLogProb, logSumExp } from '../sidecar/eval/ensemble';
import type { EvalReport } from '../sidecar/eval/evaluate';
import { ndcgGainLines } from '../sidecar/eval/gain-text';

test('nDCG, recall and MRR of a ranked list against a relevant set', () => {
  const ranked = ['a', 'b', 'c', 'd'];
  const relevant = new Set(['b', 'd']);
  const dcg = 1 / Math.log2(3) + 1 / Math.log2(5);
  const ideal = 1 + 1 / Math.log2(3);
  assert.ok(Math.abs(ndcgAt(ranked, relevant, 10) - dcg / ideal) < 1e-12);
  assert.ok(Math.abs(ndcgAt(ranked, relevant, 2) - 1 / Math.log2(3) / ideal) < 1e-12);
  assert.equal(ndcgAt(['b', 'd'], relevant, 10), 1);
  assert.equal(recallAt(ranked, relevant, 2), 0.5);
  assert.equal(recallAt(ranked, relevant, 4), 1);
  assert.equal(reciprocalRank(ranked, relevant), 0.5);
  assert.equal(reciprocalRank(ranked, new Set(['z'])), 0);
  assert.equal(ndcgAt(ranked, new Set(), 10), 0);
});

test('graded relevance as trec_eval and BEIR compute it: linear gains, ideal order over all judged documents', () => {
  const ranked = ['d1', 'd2', 'd3', 'd4'];
  // d1 is judged but not relevant (grade 0); d5 is relevant but never retrieved.
  const qrels = new Map([['d1', 0], ['d2', 2], ['d4', 1], ['d5', 3]]);
  // DCG@3 = 2/log2(3) = 1.26186; ideal DCG@3 = 3/1 + 2/log2(3) + 1/log2(4) = 4.76186.
  assert.ok(Math.abs(ndcgAt(ranked, qrels, 3) - 0.264993) < 1e-6);
  // DCG@10 adds 1/log2(5) = 0.43068; the ideal stays 4.76186 (three relevant documents).
  assert.ok(Math.abs(ndcgAt(ranked, qrels, 10) - 0.355436) < 1e-6);
  assert.equal(recallAt(ranked, qrels, 3), 1 / 3);
  assert.equal(recallAt(ranked, qrels, 4), 2 / 3);
  assert.equal(reciprocalRank(ranked, qrels), 1 / 2);
  // Grades of 1 everywhere are binary relevance.
  const binary = new Set(['d2', 'd4']);
  const ones = new Map([['d2', 1], ['d4', 1]]);
  for (const k of [1, 2, 3, 10]) assert.equal(ndcgAt(ranked, ones, k), ndcgAt(ranked, binary, k));
  assert.equal(ndcgAt(ranked, new Map([['d1', 0]]), 10), 0, 'no relevant document: 0, not NaN');
  assert.equal(recallAt(ranked, new Map([['d1', 0]]), 10), 0);
});

test('the ensemble is a retrieval-weighted mixture of passage likelihoods, stable for very small probabilities', () => {
  // Two passages, weights softmax([0, ln 3]) = [1/4, 3/4] at temperature 1.
  const lp = ensembleLogProb([Math.log(0.2), Math.log(0.6)], [0, Math.log(3)], 1);
  assert.ok(Math.abs(Math.exp(lp) - (0.25 * 0.2 + 0.75 * 0.6)) < 1e-12);
  // Log-probs of long continuations (-2000 nats) would underflow exp(); log-sum-exp keeps them exact.
  const tiny = ensembleLogProb([-2000, -2000], [0.3, 0.3], 0.1);
  assert.ok(Math.abs(tiny - -2000) < 1e-9);
  assert.equal(logSumExp([-Infinity, -Infinity]), -Infinity);
  assert.throws(() => ensembleLogProb([1], [1, 2], 1), /one similarity per passage/);
});

test('bits per byte converts nats to bits', () => {
  assert.ok(Math.abs(bitsPerByte(-Math.LN2 * 8, 4) - 2) < 1e-12);
});

test('the paired difference of two retrievers has the standard error of the per-query differences', () => {
  // Differences 0.1, 0.3, 0.2, 0.2: mean 0.2, sample variance 0.02/3.
  const { mean, stdErr } = pairedDifference([0.5, 0.6, 0.2, 0.9], [0.4, 0.3, 0.0, 0.7]);
  assert.ok(Math.abs(mean - 0.2) < 1e-12);
  assert.ok(Math.abs(stdErr - Math.sqrt(0.02 / 3 / 4)) < 1e-12);
  // Both retrievers noisy but the gap constant: no uncertainty about the gain.
  assert.equal(pairedDifference([0.1, 0.9, 0.4], [0, 0.8, 0.3]).stdErr < 1e-12, true);
  assert.throws(() => pairedDifference([1], [1, 2]), /equal lengths/);
});

test('the report names each tuned retriever\'s gain over the first, with its sign and standard error', () => {
  const teacher = { ndcg: 0, recall: 0, mrr: 0 };
  const report: EvalReport = {
    queries: 3,
    k: 10,
    noRetrievalBitsPerByte: 2,
    retrievers: [
      { name: 'base', teacher, bitsPerByte: 1.9 },
      { name: 'tuned', teacher, bitsPerByte: 1.8, ndcgGain: { mean: 0.0612, stdErr: 0.0171 } },
      { name: 'worse', teacher, bitsPerByte: 2.1, ndcgGain: { mean: -0.02, stdErr: 0.01 } },
    ],
  };
  assert.deepEqual(ndcgGainLines(report), [
    'tuned − base nDCG@10: +0.061 ± 0.017 (standard error over the same queries)',
    'worse − base nDCG@10: −0.020 ± 0.010 (standard error over the same queries)',
  ]);
});
