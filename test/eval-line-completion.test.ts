import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ensembleLogProb, tokenEnsembleLogProb } from '../sidecar/eval/ensemble';
import { editSimilarity, exactMatch } from '../sidecar/eval/line-completion';

test('exact match compares stripped non-blank lines, the prediction cut to the target’s line count', () => {
  assert.equal(exactMatch('  return a + b;', 'return a + b;  \nconsole.log(1);'), 1);
  assert.equal(exactMatch('return a + b;', '\n\nreturn a + b;'), 1);
  assert.equal(exactMatch('return a + b;', 'return a - b;'), 0);
  assert.equal(exactMatch('x = 1;\ny = 2;', 'x = 1;'), 0);
});

test('edit similarity is 1 − Levenshtein / longer length', () => {
  // "return a + b;" → "return a - b;": one substitution in 13 characters.
  assert.equal(editSimilarity('return a + b;', '  return a - b;\nmore'), 1 - 1 / 13);
  // "abc" → "abcdef": three insertions, longer length 6.
  assert.equal(editSimilarity('abc', 'abcdef'), 0.5);
  assert.equal(editSimilarity('abc', ''), 0);
  assert.equal(editSimilarity('', ''), 1);
});

test('the token-level ensemble mixes per token; with one passage it is that passage’s likelihood', () => {
  const a = [Math.log(0.5), Math.log(0.2)];
  const b = [Math.log(0.1), Math.log(0.6)];
  // Equal similarities: λ = ½ each. Per token: ½(0.5 + 0.1) = 0.3, ½(0.2 + 0.6) = 0.4.
  assert.ok(Math.abs(tokenEnsembleLogProb([a, b], [0.3, 0.3], 0.1) - Math.log(0.3 * 0.4)) < 1e-12);
  // The sequence-level ensemble mixes whole likelihoods instead: ½(0.1 + 0.06) = 0.08.
  assert.ok(Math.abs(ensembleLogProb([Math.log(0.1), Math.log(0.06)], [0.3, 0.3], 0.1) - Math.log(0.08)) < 1e-12);
  assert.ok(Math.abs(tokenEnsembleLogProb([a], [0.9], 0.1) - Math.log(0.1)) < 1e-12);
  assert.throws(() => tokenEnsembleLogProb([a, [0]], [0.1, 0.2], 0.1), /same length/);
});
