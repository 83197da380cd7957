import { test } from 'node:test';
import assert from 'node:assert/strict';
import { commonFolder, cutAt, queriesFromFiles, queriesFromRows, splitFiles } from '../sidecar/lsr/training-queries';
import { estimateTokens } from '../sidecar/corpus/chunk';

const words = (s: string) => s.split(/\s+/).filter(Boolean).length;
const cut = { contextTokens: 6, continuationTokens: 4, countTokens: words };

test('x takes whole lines back from the point and y whole lines forward, within their budgets', () => {
  const lines = ['a b', 'c d', 'e f', 'g h', 'i j', 'k l'];
  // Each line costs 2 words + 1 for its newline: x fits two lines (6), y one line (4).
  assert.deepEqual(cutAt(lines, 3, cut), { context: 'c d\ne f\n', continuation: 'g h', end: 4 });
  assert.equal(cutAt(lines, 0, cut), undefined, 'no context before the first line');
  assert.equal(cutAt(['x', '', ''], 1, cut), undefined, 'a blank continuation is no query');
});

test('CSV rows are cut between lines, or between words for one-line prose', () => {
  const qs = queriesFromRows(
    [
      { id: 'r1', text: 'def f(x):\n    y = x + 1\n    return y\n' },
      { id: 'r2', text: 'Once upon a time there was a little girl named Lily who loved the sun' },
    ],
    '/data/q.csv',
    { contextTokens: 32, continuationTokens: 32, countTokens: estimateTokens },
  );
  assert.equal(qs.length, 2);
  assert.equal(qs[0].docId, 'r1');
  assert.equal(qs[0].context + qs[0].continuation, 'def f(x):\n    y = x + 1\n    return y');
  assert.ok(qs[0].context.startsWith('def f(x):'));
  assert.equal(qs[1].context + qs[1].continuation, 'Once upon a time there was a little girl named Lily who loved the sun');
  assert.ok(qs[1].context.length > 0 && qs[1].continuation.length > 0);
});

test('workspace queries are reproducible for a seed and name their file and continuation lines', () => {
  const text = Array.from({ length: 60 }, (_, i) => `const v${i} = compute(${i});`).join('\n');
  const files = [{ path: '/w/a.ts', text }];
  const c = { contextTokens: 40, continuationTokens: 20, countTokens: estimateTokens };
  const a = queriesFromFiles(files, 3, 7, c);
  assert.deepEqual(queriesFromFiles(files, 3, 7, c), a);
  assert.notDeepEqual(queriesFromFiles(files, 3, 8, c).map((q) => q.id), a.map((q) => q.id));
  assert.equal(a.length, 3);
  const lines = text.split('\n');
  for (const q of a) {
    assert.equal(q.path, '/w/a.ts');
    assert.equal(q.continuation, lines.slice(q.continuationStart - 1, q.continuationEnd).join('\n'));
    assert.ok(q.context.endsWith(`${lines[q.continuationStart - 2]}\n`));
  }
});

test('file split is deterministic, disjoint and roughly proportional', () => {
  const paths = Array.from({ length: 1000 }, (_, i) => `/w/f${i}.ts`);
  const s = splitFiles(paths, { train: 0.2, eval: 0.1 }, 1);
  assert.deepEqual(splitFiles(paths, { train: 0.2, eval: 0.1 }, 1), s);
  assert.equal(s.train.filter((p) => s.eval.includes(p)).length, 0);
  assert.ok(s.train.length > 150 && s.train.length < 250, `train ${s.train.length}`);
  assert.ok(s.eval.length > 60 && s.eval.length < 140, `eval ${s.eval.length}`);
});

test('the split and the sampled points depend on paths inside the workspace, not on where it is checked out', () => {
  const rel = Array.from({ length: 200 }, (_, i) => `src/m${i % 7}/f${i}.ts`);
  const at = (root: string) => rel.map((r) => `${root}/${r}`);
  const a = at('/home/ana/repo');
  const b = at('/srv/ci/checkout/repo');
  assert.equal(commonFolder(a), '/home/ana/repo/src');
  assert.equal(commonFolder(['/w/src/a.ts', '/w/src/..b.ts']), '/w/src');
  const sa = splitFiles(a, { train: 0.3, eval: 0.1 }, 0, commonFolder(a));
  const sb = splitFiles(b, { train: 0.3, eval: 0.1 }, 0, commonFolder(b));
  const strip = (root: string, ps: string[]) => ps.map((p) => p.slice(root.length));
  assert.deepEqual(strip('/home/ana/repo', sa.train), strip('/srv/ci/checkout/repo', sb.train));
  assert.deepEqual(strip('/home/ana/repo', sa.eval), strip('/srv/ci/checkout/repo', sb.eval));
  // Without a base the absolute path is hashed, and the split moves with the checkout.
  assert.notDeepEqual(strip('/home/ana/repo', splitFiles(a, { train: 0.3, eval: 0.1 }, 0).train), strip('/srv/ci/checkout/repo', sb.train));

  const text = Array.from({ length: 60 }, (_, i) => `const v${i} = compute(${i});`).join('\n');
  const c = { contextTokens: 40, continuationTokens: 20, countTokens: estimateTokens };
  const points = (root: string) =>
    queriesFromFiles([{ path: `${root}/src/a.ts`, text }], 3, 7, c, root).map((q) => q.continuationStart);
  assert.deepEqual(points('/home/ana/repo'), points('/srv/ci/checkout/repo'));
});
