import { test } from 'node:test';
import assert from 'node:assert/strict';
import { reciprocalRankFusion } from '../sidecar/retrieve/rank-fusion';

test('documents ranked well in both lists beat one ranked first in a single list', () => {
  const dense = [{ id: 'a', score: 0.9 }, { id: 'b', score: 0.8 }, { id: 'c', score: 0.7 }];
  const lexical = [{ id: 'b', score: 12 }, { id: 'd', score: 10 }, { id: 'c', score: 9 }];
  const fused = reciprocalRankFusion([dense, lexical], 10);
  assert.deepEqual(fused.map((f) => f.id), ['b', 'c', 'a', 'd']);
  assert.deepEqual(fused[0].parts, [0.8, 12]);
  assert.deepEqual(fused.find((f) => f.id === 'd')!.parts, [undefined, 10]);
});

test('k caps the fused list and ties break by id', () => {
  const fused = reciprocalRankFusion([[{ id: 'y', score: 1 }], [{ id: 'x', score: 1 }]], 1);
  assert.deepEqual(fused.map((f) => f.id), ['x']);
});
