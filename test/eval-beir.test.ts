import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import type { Passage } from '../sidecar/corpus/passage';
import { readBeirDataset } from '../sidecar/eval/beir-dataset';
import { evaluateBeir, type BeirSystem } from '../sidecar/eval/beir-eval';
import { makeTinyBert } from '../scripts/make-tiny-bert';
import { writeFiles } from './helpers/temp-tree';

const CLI = [process.execPath, '--import', 'tsx', path.resolve(__dirname, '..', 'sidecar', 'cli', 'main.ts')];
const run = (...args: string[]) => spawnSync(CLI[0], [...CLI.slice(1), ...args], { encoding: 'utf8', env: { ...process.env, REPLUG_LM_URL: '', REPLUG_LM_MODEL: '' } });
const jsonl = (rows: object[]) => rows.map((r) => JSON.stringify(r)).join('\n') + '\n';
const close = (a: number, b: number, what: string) => assert.ok(Math.abs(a - b) < 1e-9, `${what}: ${a} vs ${b}`);
const L3 = Math.log2(3);

/**
 * A BEIR-layout dataset whose BM25 rankings are certain: each query's terms occur in one or two known documents.
 *   q1 "retry backoff": only d4 matches; judged d4 = 2 and d9 = 1 (d9 is not in the corpus).
 *   q2 "quotes": only d3; judged d3 = 1, d1 = 0 (judged, not relevant).
 *   q3 "html templates": d2 and a document whose _id is the query's own, which BEIR's evaluation drops.
 *   q4 "jitter backoff": d7 has both terms and ranks above d4 (one term); judged d4 = 1.
 *   q5 "zebra": the last piece of d5, a document longer than the passage budget; judged d5 = 3.
 *   q6 is not judged (not evaluated); q7 is judged only in the dev split.
 */
function writeDataset(dir: string): void {
  const long = Array.from({ length: 12 }, (_, i) => `chapter ${i} describes the plain parts of the long document`).join('\n');
  writeFiles(dir, {
    'corpus.jsonl': jsonl([
      { _id: 'd1', title: 'CSV parser', text: 'parse csv rows into records' },
      { _id: 'd2', title: '', text: 'render html templates for pages' },
      { _id: 'd3', title: 'CSV writer', text: 'the writer quotes fields' },
      { _id: 'd4', title: '', text: 'http retry with backoff' },
      { _id: 'd5', title: 'Long', text: `${long}\nzebra appears at the end` },
      { _id: 'q3', title: '', text: 'html templates html templates' },
      { _id: 'd7', title: '', text: 'exponential backoff with jitter' },
    ]),
    'queries.jsonl': jsonl([
      { _id: 'q1', text: 'retry backoff' },
      { _id: 'q2', text: 'quotes' },
      { _id: 'q3', text: 'html templates' },
      { _id: 'q4', text: 'jitter backoff' },
      { _id: 'q5', text: 'zebra' },
      { _id: 'q6', text: 'unjudged' },
      { _id: 'q7', text: 'records' },
    ]),
    'qrels/test.tsv': 'query-id\tcorpus-id\tscore\nq1\td4\t2\nq1\td9\t1\nq2\td3\t1\nq2\td1\t0\nq3\td2\t1\nq4\td4\t1\nq5\td5\t3\n',
    'qrels/dev.tsv': 'query-id\tcorpus-id\tscore\nq7\td1\t1\n',
  });
}

/** Hand-computed BM25 metrics per query: [nDCG@10, R@1, R@5, R@10, R@100, MRR]. */
const BM25_BY_QUERY = [
  [2 / (2 + 1 / L3), 0.5, 0.5, 0.5, 0.5, 1], // q1: d4 (grade 2) first; the ideal adds d9 (grade 1) at rank 2
  [1, 1, 1, 1, 1, 1], // q2
  [1, 1, 1, 1, 1, 1], // q3, once its own id is dropped
  [1 / L3, 0, 1, 1, 1, 0.5], // q4: d4 second
  [1, 1, 1, 1, 1, 1], // q5: d5 once, however many of its pieces match
];
const METRICS = ['ndcg@10', 'recall@1', 'recall@5', 'recall@10', 'recall@100', 'mrr@100'];

let dir: string;
before(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'replug-beir-'));
  writeDataset(path.join(dir, 'data'));
});
after(() => rmSync(dir, { recursive: true, force: true }));

describe('BEIR evaluation', () => {
  test('documents are ranked by their best passage; graded metrics and paired differences match a hand computation', async () => {
    const dataset = await readBeirDataset(path.join(dir, 'data'));
    assert.deepEqual(dataset.queries.map((q) => q.id), ['q1', 'q2', 'q3', 'q4', 'q5']);
    const passage = (docId: string, piece = 0): Passage => ({ id: `${docId}#${piece}`, path: dataset.corpusFile, startLine: 1, endLine: 1, text: '', hash: '', docId });
    // "base" ranks the judged documents first except for q1; "tuned" fixes q1 and ranks two pieces of one document.
    const rankings: Record<string, Record<string, Passage[]>> = {
      base: {
        q1: [passage('d1'), passage('d2'), passage('d4')],
        q2: [passage('d3')],
        q3: [passage('q3'), passage('d2')],
        q4: [passage('d4')],
        q5: [passage('d5')],
      },
      tuned: {
        q1: [passage('d4', 0), passage('d4', 1), passage('d9')],
        q2: [passage('d3')],
        q3: [passage('d2')],
        q4: [passage('d4')],
        q5: [passage('d5')],
      },
    };
    const queryIds = new Map(dataset.queries.map((q) => [q.text, q.id]));
    const systems: BeirSystem[] = ['base', 'tuned'].map((name) => ({ name, search: async (query) => rankings[name][queryIds.get(query)!] }));
    const report = await evaluateBeir(dataset, new Set(['d1', 'd2', 'd3', 'd4', 'd5', 'd7', 'q3']), systems);
    assert.equal(report.judgedNotIndexed, 1, 'd9');

    // base q1: d4 (grade 2) at rank 3; ideal 2 + 1/log2(3). tuned q1: d4 then d9 — the ideal order.
    const baseQ1 = 2 / 2 / (2 + 1 / L3);
    const base = [baseQ1, 1, 1, 1, 1];
    close(report.systems[0].metrics['ndcg@10'], base.reduce((a, b) => a + b) / 5, 'base nDCG@10');
    close(report.systems[1].metrics['ndcg@10'], 1, 'tuned nDCG@10');
    close(report.systems[0].metrics['mrr@100'], (1 / 3 + 4) / 5, 'base MRR');
    close(report.systems[0].metrics['recall@1'], 4 / 5, 'base R@1 (q1 has two relevant, none at 1)');
    close(report.systems[1].metrics['recall@1'], (0.5 + 4) / 5, 'tuned R@1');
    // Only q1 differs: differences [1 - baseQ1, 0, 0, 0, 0]; their sample sd / sqrt(5).
    const d = 1 - baseQ1;
    const sd = Math.sqrt(((d - d / 5) ** 2 + 4 * (d / 5) ** 2) / 4);
    close(report.difference!.metrics['ndcg@10'].mean, d / 5, 'difference');
    close(report.difference!.metrics['ndcg@10'].stdErr, sd / Math.sqrt(5), 'standard error');
    assert.deepEqual(Object.keys(report.systems[0].metrics), METRICS);
  });

  test('eval --beir needs no LM: BM25 over `index --beir` matches the hand-computed metrics; --split picks the qrels', () => {
    const data = path.join(dir, 'data');
    const indexDir = path.join(dir, 'lexical');
    const indexed = run('index', '--beir', data, '--index-dir', indexDir, '--max-tokens', '16');
    assert.equal(indexed.status, 0, indexed.stderr);
    const out = run('eval', '--beir', data, '--index-dir', indexDir, '--json');
    assert.equal(out.status, 0, out.stderr);
    const report = JSON.parse(out.stdout);
    assert.deepEqual([report.queries, report.judgedNotIndexed, report.systems.map((s: { name: string }) => s.name)], [5, 1, ['bm25']]);
    METRICS.forEach((metric, m) => {
      close(report.systems[0].metrics[metric], BM25_BY_QUERY.reduce((sum, q) => sum + q[m], 0) / 5, metric);
    });
    const text = run('eval', '--beir', data, '--index-dir', indexDir);
    assert.match(text.stdout, /5 judged queries; 1 relevant document is not in the index/);
    assert.match(text.stdout, /^bm25 +0\.\d{3} +0\.700 +0\.900 +0\.900 +0\.900 +0\.900$/m);
    const dev = JSON.parse(run('eval', '--beir', data, '--index-dir', indexDir, '--split', 'dev', '--json').stdout);
    assert.equal(dev.queries, 1);
  });

  test('base and tuned beside BM25, with tuned − base and its standard error (zero for the same model)', async () => {
    const data = path.join(dir, 'data');
    const model = await makeTinyBert(path.join(dir, 'model'), { vocab: 'real', maxPos: 128 });
    const indexDir = path.join(dir, 'dense');
    const indexed = run('index', '--beir', data, '--index-dir', indexDir, '--model', model);
    assert.equal(indexed.status, 0, indexed.stderr);
    const out = run('eval', '--beir', data, '--index-dir', indexDir, '--tuned', model, '--device', 'cpu');
    assert.equal(out.status, 0, out.stderr);
    assert.match(out.stdout, /^retriever +ndcg@10 +recall@1 +recall@5 +recall@10 +recall@100 +mrr@100$/m);
    for (const name of ['bm25', 'base', 'tuned']) assert.match(out.stdout, new RegExp(`^${name} +\\d\\.\\d{3}`, 'm'));
    assert.match(out.stdout, /^tuned − base +\+0\.000±0\.000 +\+0\.000±0\.000/m);
  });

  test('a folder that is not a BEIR dataset, missing queries and unindexed corpora are clear errors', () => {
    const data = path.join(dir, 'data');
    assert.match(run('index', '--beir', dir, '--index-dir', path.join(dir, 'x')).stderr, /not a BEIR dataset folder: it has no corpus\.jsonl/);
    assert.match(run('eval', '--beir', data, '--index-dir', path.join(dir, 'none')).stderr, /no index at .*index --beir/);
    assert.match(run('eval', '--beir', data, '--index-dir', path.join(dir, 'lexical'), '--split', 'train').stderr, /no qrels\/train\.tsv/);
    const other = path.join(dir, 'other');
    writeFiles(other, { 'corpus.jsonl': jsonl([{ _id: 'x', text: 'x' }]), 'queries.jsonl': jsonl([{ _id: 'q1', text: 'x' }]), 'qrels/test.tsv': 'q1\tx\t1\nq2\tx\t1\n' });
    assert.match(run('eval', '--beir', other, '--index-dir', path.join(dir, 'lexical')).stderr, /judges 1 queries that queries\.jsonl does not have \("q2"\)/);
    writeFiles(other, { 'qrels/test.tsv': 'q1\tx\t1\n' });
    assert.match(run('eval', '--beir', other, '--index-dir', path.join(dir, 'lexical')).stderr, /holds nothing of .*other\/corpus\.jsonl: run `replug-code index --beir/);
    writeFiles(other, { 'qrels/test.tsv': 'query-id\tcorpus-id\tscore\nq1\tx\thigh\n' });
    assert.match(run('eval', '--beir', other, '--index-dir', path.join(dir, 'lexical')).stderr, /test\.tsv:2: score "high" is not a number/);
  });
});
