import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PrefixCache, type KvEntry } from '../sidecar/lm/llama2c/prefix-cache';

/** An entry of one layer whose keys are 4 floats per token. */
function entry(ids: number[]): KvEntry {
  return { ids, keys: [new Float32Array(4 * ids.length)], values: [new Float32Array(4 * ids.length)], next: new Float32Array(8) };
}
/** Bytes an entry of `tokens` tokens counts for: keys and values, the next distribution, the ids. */
const size = (tokens: number) => 2 * 16 * tokens + 32 + 8 * tokens;

test('finds the longest cached prefix, the whole sequence included, and nothing for a sequence that only shares a start', () => {
  const cache = new PrefixCache(1 << 20);
  cache.add(entry([1, 2]));
  cache.add(entry([1, 2, 3, 4]));
  assert.deepEqual(cache.longest([1, 2, 3, 4, 5, 6])?.ids, [1, 2, 3, 4]);
  assert.deepEqual(cache.longest([1, 2, 3, 4])?.ids, [1, 2, 3, 4]);
  assert.deepEqual(cache.longest([1, 2, 3, 9])?.ids, [1, 2]);
  assert.equal(cache.longest([2, 2, 3, 4]), undefined);
  assert.equal(cache.longest([]), undefined);
});

test('a stored entry does not change when the caller extends its array afterwards', () => {
  const cache = new PrefixCache(1 << 20);
  const ids = [5, 6, 7];
  cache.add(entry([...ids]));
  ids.push(8);
  assert.deepEqual(cache.longest(ids)?.ids, [5, 6, 7]);
});

test('evicts the least recently used entries past the byte budget; an entry over the whole budget is not kept', () => {
  const cache = new PrefixCache(2 * size(10));
  const [a, b, c] = [[1, ...Array(9).fill(0)], [2, ...Array(9).fill(0)], [3, ...Array(9).fill(0)]];
  cache.add(entry(a));
  cache.add(entry(b));
  assert.ok(cache.longest(a), 'a is used, so b is now the oldest');
  cache.add(entry(c));
  assert.ok(cache.longest(a));
  assert.equal(cache.longest(b), undefined);
  assert.ok(cache.longest(c));
  cache.add(entry(Array(100).fill(4)));
  assert.equal(cache.longest(Array(100).fill(4)), undefined);
  assert.ok(cache.longest(a) && cache.longest(c), 'an oversized entry evicts nothing');
});
