import { test } from 'node:test';
import assert from 'node:assert/strict';
import { logSoftmax } from '../sidecar/eval/ensemble';
import { chooseToken, mixCandidates, mixtureLogProb, type PassageTop } from '../sidecar/generate/mixture';
import { seededRandom } from '../sidecar/lsr/training-queries';

const top = (probs: Record<string, number>) => new Map(Object.entries(probs).map(([k, p]) => [k, Math.log(p)]));
const exp = (m: Map<string, number>) => Object.fromEntries([...m].map(([k, lp]) => [k, Math.exp(lp)]));

function assertClose(actual: Record<string, number>, expected: Record<string, number>, eps = 1e-9): void {
  assert.deepEqual(Object.keys(actual).sort(), Object.keys(expected).sort());
  for (const [k, v] of Object.entries(expected)) assert.ok(Math.abs(actual[k] - v) < eps, `${k}: ${actual[k]} vs ${v}`);
}

// Similarities 0.9 and 0.7 at γ = 0.1: λ = softmax([9, 7]) = [e²/(e²+1), 1/(e²+1)] = [0.880797…, 0.119203…].
const l1 = Math.exp(2) / (Math.exp(2) + 1);
const l2 = 1 / (Math.exp(2) + 1);
const [w1, w2] = logSoftmax([0.9 / 0.1, 0.7 / 0.1]);

test('full distributions mix as Σ λ_d p_d(t), by hand on a four-token vocabulary', () => {
  const passages: PassageTop<string>[] = [
    { logWeight: w1, top: top({ a: 0.5, b: 0.3, c: 0.15, d: 0.05 }) },
    { logWeight: w2, top: top({ a: 0.1, b: 0.2, c: 0.6, d: 0.1 }) },
  ];
  const expected = { a: l1 * 0.5 + l2 * 0.1, b: l1 * 0.3 + l2 * 0.2, c: l1 * 0.15 + l2 * 0.6, d: l1 * 0.05 + l2 * 0.1 };
  for (const tail of ['floor', 'zero'] as const) assertClose(exp(mixCandidates(passages, tail)), expected);
  assert.equal(chooseToken(mixCandidates(passages, 'floor'), { random: Math.random }), 'a');
});

test('the ensemble can pick a token that is no passage’s own first choice', () => {
  const passages: PassageTop<string>[] = [
    { logWeight: Math.log(0.5), top: top({ x: 0.5, y: 0.4, z: 0.1 }) },
    { logWeight: Math.log(0.5), top: top({ z: 0.5, y: 0.4, x: 0.1 }) },
  ];
  assertClose(exp(mixCandidates(passages, 'zero')), { x: 0.3, y: 0.4, z: 0.3 });
  assert.equal(chooseToken(mixCandidates(passages, 'zero'), { random: Math.random }), 'y');
});

test('tokens outside a passage’s top-N: floor credits min(N-th probability, leftover / missing); zero credits nothing', () => {
  // Top-2 lists of the four-token distributions above.
  const passages: PassageTop<string>[] = [
    { logWeight: w1, top: top({ a: 0.5, b: 0.3 }) },
    { logWeight: w2, top: top({ c: 0.6, b: 0.2 }) },
  ];
  // Passage 1 misses c: leftover 0.2, one missing token, its 2nd probability 0.3 → credit 0.2.
  // Passage 2 misses a: leftover 0.2, one missing token, its 2nd probability 0.2 → credit 0.2.
  assertClose(exp(mixCandidates(passages, 'floor')), { a: l1 * 0.5 + l2 * 0.2, b: l1 * 0.3 + l2 * 0.2, c: l1 * 0.2 + l2 * 0.6 });
  assertClose(exp(mixCandidates(passages, 'zero')), { a: l1 * 0.5, b: l1 * 0.3 + l2 * 0.2, c: l2 * 0.6 });
  // The cap: with leftover 0.45 and one missing token, the credit is the 2nd probability 0.05, not 0.45.
  const capped: PassageTop<string>[] = [
    { logWeight: Math.log(0.5), top: top({ a: 0.5, b: 0.05 }) },
    { logWeight: Math.log(0.5), top: top({ c: 0.9, a: 0.05 }) },
  ];
  assertClose(exp(mixCandidates(capped, 'floor')), { a: 0.5 * 0.5 + 0.5 * 0.05, b: 0.5 * 0.05 + 0.5 * 0.05, c: 0.5 * 0.05 + 0.5 * 0.9 });
});

test('over the whole vocabulary the ensemble is a distribution: the unlisted tokens share what is left', () => {
  const passages: PassageTop<string>[] = [
    { logWeight: w1, top: top({ a: 0.5, b: 0.3 }) },
    { logWeight: w2, top: top({ c: 0.6, b: 0.2 }) },
  ];
  const vocab = ['a', 'b', 'c', 'd', 'e'];
  for (const tail of ['floor', 'zero'] as const) {
    const total = vocab.reduce((s, t) => s + Math.exp(mixtureLogProb(passages, tail, t, vocab.length)), 0);
    assert.ok(Math.abs(total - 1) < 1e-12, `${tail}: sums to ${total}`);
  }
  // zero: d gets each passage's leftover (0.2 and 0.2) over the two unlisted tokens d and e.
  assert.ok(Math.abs(Math.exp(mixtureLogProb(passages, 'zero', 'd', 5)) - (l1 * 0.2 + l2 * 0.2) / 2) < 1e-12);
});

test('sampling draws candidates in proportion to p^(1/T), within the top-p nucleus, reproducibly from a seed', () => {
  const mixed = top({ a: 0.5, b: 0.3, c: 0.2 });
  const draw = (n: number, temperature: number, topP: number, seed: string) => {
    const random = seededRandom(seed);
    const counts: Record<string, number> = { a: 0, b: 0, c: 0 };
    for (let i = 0; i < n; i++) counts[chooseToken(mixed, { temperature, topP, random })]++;
    return counts;
  };
  const n = 20_000;
  const plain = draw(n, 1, 1, 's');
  for (const [k, p] of Object.entries({ a: 0.5, b: 0.3, c: 0.2 })) assert.ok(Math.abs(plain[k] / n - p) < 0.015, `${k}: ${plain[k] / n}`);
  // T = 0.5 squares the probabilities: 0.25 : 0.09 : 0.04.
  const sharp = draw(n, 0.5, 1, 's');
  assert.ok(Math.abs(sharp.a / n - 0.25 / 0.38) < 0.015, `a at T=0.5: ${sharp.a / n}`);
  // top_p 0.8 keeps a and b (0.5 + 0.3 reaches 0.8), never c.
  const nucleus = draw(n, 1, 0.8, 's');
  assert.equal(nucleus.c, 0);
  assert.ok(Math.abs(nucleus.a / n - 0.625) < 0.015);
  assert.deepEqual(draw(100, 1, 1, 'same'), draw(100, 1, 1, 'same'));
  assert.equal(chooseToken(mixed, { temperature: 0, random: () => 0.99 }), 'a');
});
