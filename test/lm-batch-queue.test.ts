import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { BatchQueue } from '../sidecar/lm/batch-queue';

/** A runner whose runs finish when the test says; each row's result names the kind and the row. */
function controlledRunner() {
  const runs: { kind: string; rows: number[][]; finish: (err?: Error) => void }[] = [];
  const run = (kind: string, rows: number[][]) =>
    new Promise<string[]>((resolve, reject) => {
      runs.push({ kind, rows, finish: (err) => (err ? reject(err) : resolve(rows.map((r) => `${kind}:${r.join(',')}`))) });
    });
  return { runs, run };
}

const seq = (length: number, first = 1) => Array.from({ length }, (_, i) => first + i);
const submit = (queue: BatchQueue<string, number[], string>, kind: string, ids: number[]) => queue.submit(kind, ids, ids.length);

test('jobs submitted in one turn share a run, longest first, and each caller gets its own row', async () => {
  const { runs, run } = controlledRunner();
  const queue = new BatchQueue(run, { tokens: 1000, inFlight: 2 });
  const results = Promise.all([submit(queue, 'a', seq(2)), submit(queue, 'a', seq(5)), submit(queue, 'a', seq(3))]);
  await nextTurn();
  assert.equal(runs.length, 1);
  assert.deepEqual(runs[0].rows.map((r) => r.length), [5, 3, 2]);
  runs[0].finish();
  assert.deepEqual(await results, ['a:1,2', 'a:1,2,3,4,5', 'a:1,2,3']);
});

test('kinds never share a run, and a run stays within the token budget (rows × longest row)', async () => {
  const { runs, run } = controlledRunner();
  const queue = new BatchQueue(run, { tokens: 10, inFlight: 8 });
  const all = Promise.all([submit(queue, 'dense', seq(5)), submit(queue, 'sparse', seq(4)), submit(queue, 'dense', seq(5)), submit(queue, 'dense', seq(4))]);
  await nextTurn();
  assert.deepEqual(runs.map((r) => [r.kind, r.rows.map((row) => row.length)]), [['dense', [5, 5]], ['sparse', [4]], ['dense', [4]]]);
  runs.forEach((r) => r.finish());
  assert.deepEqual(await all, ['dense:1,2,3,4,5', 'sparse:1,2,3,4', 'dense:1,2,3,4,5', 'dense:1,2,3,4']);
});

test('with runs in flight, later jobs wait and then go together; the oldest is never passed over', async () => {
  const { runs, run } = controlledRunner();
  const queue = new BatchQueue(run, { tokens: 8, inFlight: 1 });
  const first = submit(queue, 'a', seq(8));
  await nextTurn();
  // While the first run is busy: a short job, then long ones that fill whole runs by themselves.
  const short = submit(queue, 'a', seq(2, 100));
  const longs = [submit(queue, 'a', seq(8, 200)), submit(queue, 'a', seq(8, 300))];
  await nextTurn();
  assert.equal(runs.length, 1, 'inFlight 1: nothing else starts');
  runs[0].finish();
  await first;
  await nextTurn();
  assert.deepEqual(runs[1].rows, [seq(2, 100)], 'the oldest waiting job goes next, although longer ones sort first');
  runs[1].finish();
  await short;
  await nextTurn();
  runs[2].finish();
  await nextTurn();
  runs[3].finish();
  assert.deepEqual(await Promise.all(longs), [`a:${seq(8, 200).join(',')}`, `a:${seq(8, 300).join(',')}`]);
});

test('a failed run rejects its own jobs only; the queue goes on', async () => {
  const { runs, run } = controlledRunner();
  const queue = new BatchQueue(run, { tokens: 4, inFlight: 2 });
  const doomed = submit(queue, 'a', seq(4));
  const fine = submit(queue, 'a', seq(4, 10));
  await nextTurn();
  runs[0].finish(new Error('session broke'));
  runs[1].finish();
  await assert.rejects(doomed, /session broke/);
  assert.equal(await fine, 'a:10,11,12,13');
  const later = submit(queue, 'a', seq(1));
  await nextTurn();
  runs[2].finish();
  assert.equal(await later, 'a:1');
});
