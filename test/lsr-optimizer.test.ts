import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { MIN_PARAMS_PER_THREAD } from '../sidecar/lsr/adamw-threads';
import { AdamW, isDecayed, learningRate } from '../sidecar/lsr/optimizer';

/** The training graph reports the global norm; here it is computed in float64. */
const norm = (grads: Map<string, Float32Array>) => Math.sqrt([...grads.values()].reduce((s, g) => s + g.reduce((a, x) => a + x * x, 0), 0));
const update = (opt: AdamW, grads: Map<string, Float32Array>) => opt.update(grads, norm(grads));

const close = (actual: ArrayLike<number>, expected: number[], tol = 1e-6) => {
  assert.equal(actual.length, expected.length);
  for (let i = 0; i < expected.length; i++) assert.ok(Math.abs(actual[i] - expected[i]) <= tol, `[${i}] ${actual[i]} ≠ ${expected[i]}`);
};

describe('AdamW', () => {
  test('two updates match the hand-computed AdamW steps, with decay on the matrix only', async () => {
    const w = Float32Array.from([1, -2]);
    const b = Float32Array.from([0.5]);
    // warmupFraction 0, 4 steps: rates 0.1 and 0.075.
    const opt = new AdamW(new Map([['layer.weight', w], ['layer.bias', b]]), { lr: 0.1, totalSteps: 4, warmupFraction: 0, maxGradNorm: Infinity });
    await update(opt, new Map([['layer.weight', Float32Array.from([0.1, -0.2])], ['layer.bias', Float32Array.from([0.3])]]));
    // Step 1: m̂ = g, v̂ = g², so each parameter moves by lr·g/(|g| + 1e-8); the matrix also shrinks by lr·0.01.
    close(w, [1 * (1 - 0.001) - 0.1, -2 * (1 - 0.001) + 0.1]);
    close(b, [0.5 - 0.1]);
    await update(opt, new Map([['layer.weight', Float32Array.from([0.3, 0.2])], ['layer.bias', Float32Array.from([0])]]));
    // Step 2 for w[0]: m = 0.9·0.01 + 0.1·0.3 = 0.039, v = 0.999·1e-5 + 0.001·0.09 = 9.999e-5,
    // m̂ = 0.039/0.19, v̂ = 9.999e-5/0.001999; update = 0.075·m̂/(√v̂ + 1e-8).
    const step2 = (m: number, v: number) => (0.075 * (m / 0.19)) / (Math.sqrt(v / (1 - 0.999 ** 2)) + 1e-8);
    close(w, [0.899 * (1 - 0.00075) - step2(0.039, 9.999e-5), -1.898 * (1 - 0.00075) - step2(-0.018 + 0.02, 0.999 * 4e-5 + 0.001 * 0.04)]);
    close(b, [0.4 - step2(0.027, 0.999 * 9e-5)]);
    assert.equal(opt.step, 2);
  });

  test('weight decay skips biases and LayerNorm parameters', async () => {
    assert.deepEqual(
      ['encoder.layer.0.attention.self.query.weight', 'embeddings.word_embeddings.weight', 'adapter.weight', 'x.bias', 'embeddings.LayerNorm.weight'].map(isDecayed),
      [true, true, true, false, false],
    );
    const params = new Map(['a.weight', 'a.bias', 'a.LayerNorm.weight'].map((n) => [n, Float32Array.from([2])]));
    const opt = new AdamW(params, { lr: 0.5, totalSteps: 1, warmupFraction: 0, weightDecay: 0.1 });
    await update(opt, new Map([...params.keys()].map((n) => [n, new Float32Array(1)])));
    assert.deepEqual([...params.values()].map((p) => p[0]), [Math.fround(2 * (1 - 0.05)), 2, 2]);
  });

  test('clipping scales the gradient into the moments and reports the unclipped norm', async () => {
    const p = new Float32Array(2);
    const opt = new AdamW(new Map([['p.weight', p]]), { lr: 0.1, totalSteps: 10, maxGradNorm: 1 });
    const { gradNorm } = await update(opt, new Map([['p.weight', Float32Array.from([6, 8])]]));
    assert.equal(gradNorm, 10);
    close(opt.getState().m.get('p.weight')!, [0.1 * 0.6, 0.1 * 0.8], 1e-6);
  });

  test('linear warmup then linear decay; past the end the rate is 0', () => {
    const opts = { lr: 1, totalSteps: 10, warmupFraction: 0.2 };
    assert.deepEqual([1, 2, 3, 6, 10, 11].map((t) => learningRate(t, opts)), [0.5, 1, 1, 5 / 8, 1 / 8, 0]);
    assert.equal(learningRate(1, { lr: 1, totalSteps: 20 }), 0.5, 'default warmup is 10% of the steps');
  });

  test('state round-trips through safetensors and continues identically', async () => {
    const make = () => new Map([['a.weight', Float32Array.from([1, 2, 3])]]);
    const grads = (k: number) => new Map([['a.weight', Float32Array.from([k, -k, 0.5])]]);
    const opts = { lr: 0.01, totalSteps: 5 };
    const first = make();
    const a = new AdamW(first, opts);
    await update(a, grads(1));
    const second = new Map([['a.weight', first.get('a.weight')!.slice()]]);
    const b = new AdamW(second, opts);
    b.decodeState(a.encodeState(), 'state');
    assert.equal(b.step, 1);
    await update(a, grads(2));
    await update(b, grads(2));
    assert.deepEqual(second.get('a.weight'), first.get('a.weight'));
  });

  test('a parameter with its own rate follows the same schedule at that rate; the others are unchanged by it', async () => {
    const make = () => new Map([['a.weight', Float32Array.from([1, -1])], ['t.bias', Float32Array.from([0])]]);
    const grads = () => new Map([['a.weight', Float32Array.from([0.2, -0.1])], ['t.bias', Float32Array.from([-0.3])]]);
    // 4 steps with 1 of warmup: rates lr·{1, 1, 2/3, 1/3}.
    const opts = { lr: 0.01, totalSteps: 4, warmupFraction: 0.25, weightDecay: 0 };
    const [own, plain] = [make(), make()];
    const a = new AdamW(own, { ...opts, lrByName: { 't.bias': 0.5 } });
    const b = new AdamW(plain, opts);
    try {
      for (let step = 0; step < 3; step++) {
        const [infoA, infoB] = [await update(a, grads()), await update(b, grads())];
        assert.equal(infoA.lr, infoB.lr, 'the reported rate is the main one');
      }
      assert.deepEqual(own.get('a.weight'), plain.get('a.weight'));
      // A constant gradient: m̂/√v̂ = sign(g) at every step, so the bias moves by the sum of its rates.
      close(own.get('t.bias')!, [0.5 * (1 + 1 + 2 / 3)], 1e-5);
      close(plain.get('t.bias')!, [0.01 * (1 + 1 + 2 / 3)], 1e-7);
      const resumed = make();
      const c = new AdamW(resumed, { ...opts, lrByName: { 't.bias': 0.5 } });
      c.decodeState(a.encodeState(), 'state');
      for (const [name, p] of own) resumed.get(name)!.set(p);
      await Promise.all([update(a, grads()), update(c, grads())]);
      assert.deepEqual(resumed, own, 'its moments are saved and restored with the others');
      await c.dispose();
    } finally {
      await a.dispose();
      await b.dispose();
    }
    assert.throws(() => new AdamW(make(), { ...opts, lrByName: { 'x.bias': 1 } }), /"x.bias", which is not a parameter/);
    assert.throws(() => new AdamW(make(), { ...opts, lrByName: { 't.bias': 0 } }), /learning rate of "t.bias" must be > 0/);
  });

  test('bad input gives errors that say what is wrong', async () => {
    const params = new Map([['a.weight', new Float32Array(3)]]);
    assert.throws(() => new AdamW(params, { lr: 0, totalSteps: 5 }), /learning rate must be > 0/);
    assert.throws(() => new AdamW(params, { lr: 1, totalSteps: 0 }), /totalSteps must be a positive integer/);
    const opt = new AdamW(params, { lr: 1, totalSteps: 5 });
    await assert.rejects(opt.update(new Map(), 0), /gradient for "a.weight" is missing/);
    await assert.rejects(opt.update(new Map([['a.weight', new Float32Array(2)]]), 0), /2 values, expected 3/);
    await assert.rejects(opt.update(new Map([['a.weight', new Float32Array(3)]]), NaN), /gradient norm must be a finite number/);
    assert.throws(() => opt.setState({ step: 1, m: new Map(), v: new Map() }), /belongs to another model/);
  });

  test('split across worker threads, updates and checkpoints are bit-identical to one thread', async () => {
    // Tensors of different sizes and kinds (decayed or not), large enough for two threads to take part.
    const shapes: Array<[string, number]> = [['a.weight', MIN_PARAMS_PER_THREAD], ['b.weight', MIN_PARAMS_PER_THREAD / 2], ['b.bias', 1000], ['c.LayerNorm.weight', MIN_PARAMS_PER_THREAD / 2 + 7]];
    const values = (seed: number, n: number) => Float32Array.from({ length: n }, (_, i) => Math.sin(seed * 1000 + i * 0.37) * 0.1);
    const params = () => new Map(shapes.map(([name, n], t) => [name, values(t + 1, n)]));
    const grads = (step: number) => new Map(shapes.map(([name, n], t) => [name, values(step * 10 + t, n).map((x) => x * (step === 2 ? 40 : 1))]));
    const opts = { lr: 1e-2, totalSteps: 5, warmupFraction: 0 };
    const [one, two] = [params(), params()];
    const single = new AdamW(one, opts, { threads: 1 });
    const split = new AdamW(two, opts, { threads: 2 });
    try {
      assert.equal(split.threads, 2);
      // Step 2's gradients are large enough to be clipped.
      for (let step = 1; step <= 3; step++) {
        const [a, b] = await Promise.all([update(single, grads(step)), update(split, grads(step))]);
        assert.deepEqual(a, b);
      }
      for (const [name] of shapes) assert.deepEqual(two.get(name), one.get(name), name);
      assert.ok(split.encodeState().equals(single.encodeState()), 'same optimizer state file');
      // A state written by one thread resumes on two and continues identically.
      const resumed = params();
      for (const [name, p] of one) resumed.get(name)!.set(p);
      const restored = new AdamW(resumed, opts, { threads: 2 });
      try {
        restored.decodeState(single.encodeState(), 'state');
        await Promise.all([update(single, grads(4)), update(restored, grads(4))]);
        for (const [name] of shapes) assert.deepEqual(resumed.get(name), one.get(name), name);
      } finally {
        await restored.dispose();
      }
    } finally {
      await single.dispose();
      await split.dispose();
    }
    await assert.rejects(update(split, grads(5)), /the optimizer was disposed/);
  });
});
