import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { AdamW, globalGradNorm, isDecayed, learningRate } from '../sidecar/lsr/optimizer';

const close = (actual: ArrayLike<number>, expected: number[], tol = 1e-6) => {
  assert.equal(actual.length, expected.length);
  for (let i = 0; i < expected.length; i++) assert.ok(Math.abs(actual[i] - expected[i]) <= tol, `[${i}] ${actual[i]} ≠ ${expected[i]}`);
};

describe('AdamW', () => {
  test('two updates match the hand-computed AdamW steps, with decay on the matrix only', () => {
    const w = Float32Array.from([1, -2]);
    const b = Float32Array.from([0.5]);
    // warmupFraction 0, 4 steps: rates 0.1 and 0.075.
    const opt = new AdamW(new Map([['layer.weight', w], ['layer.bias', b]]), { lr: 0.1, totalSteps: 4, warmupFraction: 0, maxGradNorm: Infinity });
    opt.update(new Map([['layer.weight', Float32Array.from([0.1, -0.2])], ['layer.bias', Float32Array.from([0.3])]]));
    // Step 1: m̂ = g, v̂ = g², so each parameter moves by lr·g/(|g| + 1e-8); the matrix also shrinks by lr·0.01.
    close(w, [1 * (1 - 0.001) - 0.1, -2 * (1 - 0.001) + 0.1]);
    close(b, [0.5 - 0.1]);
    opt.update(new Map([['layer.weight', Float32Array.from([0.3, 0.2])], ['layer.bias', Float32Array.from([0])]]));
    // Step 2 for w[0]: m = 0.9·0.01 + 0.1·0.3 = 0.039, v = 0.999·1e-5 + 0.001·0.09 = 9.999e-5,
    // m̂ = 0.039/0.19, v̂ = 9.999e-5/0.001999; update = 0.075·m̂/(√v̂ + 1e-8).
    const step2 = (m: number, v: number) => (0.075 * (m / 0.19)) / (Math.sqrt(v / (1 - 0.999 ** 2)) + 1e-8);
    close(w, [0.899 * (1 - 0.00075) - step2(0.039, 9.999e-5), -1.898 * (1 - 0.00075) - step2(-0.018 + 0.02, 0.999 * 4e-5 + 0.001 * 0.04)]);
    close(b, [0.4 - step2(0.027, 0.999 * 9e-5)]);
    assert.equal(opt.step, 2);
  });

  test('weight decay skips biases and LayerNorm parameters', () => {
    assert.deepEqual(
      ['encoder.layer.0.attention.self.query.weight', 'embeddings.word_embeddings.weight', 'adapter.weight', 'x.bias', 'embeddings.LayerNorm.weight'].map(isDecayed),
      [true, true, true, false, false],
    );
    const params = new Map(['a.weight', 'a.bias', 'a.LayerNorm.weight'].map((n) => [n, Float32Array.from([2])]));
    const opt = new AdamW(params, { lr: 0.5, totalSteps: 1, warmupFraction: 0, weightDecay: 0.1 });
    opt.update(new Map([...params.keys()].map((n) => [n, new Float32Array(1)])));
    assert.deepEqual([...params.values()].map((p) => p[0]), [Math.fround(2 * (1 - 0.05)), 2, 2]);
  });

  test('clipping scales the gradient into the moments and reports the unclipped norm', () => {
    const p = new Float32Array(2);
    const opt = new AdamW(new Map([['p.weight', p]]), { lr: 0.1, totalSteps: 10, maxGradNorm: 1 });
    const { gradNorm } = opt.update(new Map([['p.weight', Float32Array.from([6, 8])]]));
    assert.equal(gradNorm, 10);
    close(opt.getState().m.get('p.weight')!, [0.1 * 0.6, 0.1 * 0.8], 1e-6);
    assert.equal(globalGradNorm([Float32Array.from([3]), Float32Array.from([4])]), 5);
  });

  test('linear warmup then linear decay; past the end the rate is 0', () => {
    const opts = { lr: 1, totalSteps: 10, warmupFraction: 0.2 };
    assert.deepEqual([1, 2, 3, 6, 10, 11].map((t) => learningRate(t, opts)), [0.5, 1, 1, 5 / 8, 1 / 8, 0]);
    assert.equal(learningRate(1, { lr: 1, totalSteps: 20 }), 0.5, 'default warmup is 10% of the steps');
  });

  test('state round-trips through safetensors and continues identically', () => {
    const make = () => new Map([['a.weight', Float32Array.from([1, 2, 3])]]);
    const grads = (k: number) => new Map([['a.weight', Float32Array.from([k, -k, 0.5])]]);
    const opts = { lr: 0.01, totalSteps: 5 };
    const first = make();
    const a = new AdamW(first, opts);
    a.update(grads(1));
    const second = new Map([['a.weight', first.get('a.weight')!.slice()]]);
    const b = new AdamW(second, opts);
    b.decodeState(a.encodeState(), 'state');
    assert.equal(b.step, 1);
    a.update(grads(2));
    b.update(grads(2));
    assert.deepEqual(second.get('a.weight'), first.get('a.weight'));
  });

  test('bad input gives errors that say what is wrong', () => {
    const params = new Map([['a.weight', new Float32Array(3)]]);
    assert.throws(() => new AdamW(params, { lr: 0, totalSteps: 5 }), /learning rate must be > 0/);
    assert.throws(() => new AdamW(params, { lr: 1, totalSteps: 0 }), /totalSteps must be a positive integer/);
    const opt = new AdamW(params, { lr: 1, totalSteps: 5 });
    assert.throws(() => opt.update(new Map()), /gradient for "a.weight" is missing/);
    assert.throws(() => opt.update(new Map([['a.weight', new Float32Array(2)]])), /2 values, expected 3/);
    assert.throws(() => opt.setState({ step: 1, m: new Map(), v: new Map() }), /belongs to another model/);
  });
});
