import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { makeTinyBert } from '../scripts/make-tiny-bert';
import type { BertConfig, Pooling } from '../sidecar/encoder/bert-config';
import { TrainStep, type LsrBatch } from '../sidecar/lsr/train-step';
import { ABSTAIN_SCORE } from '../sidecar/retrieve/abstention';

/*
 * The hand-written backward pass is checked against central differences of an independent float64 JS
 * implementation of the same model and loss (float64 makes the differences exact to ~1e-10, so what remains is
 * the ORT graph's float32 rounding). Tiny config: 2 layers, hidden 32, 4 heads, FFN 64, 16 positions.
 */

type Weights = Map<string, Float64Array>;

/** erf to ~1e-15: Maclaurin series near 0, Lentz continued fraction for erfc in the tails. */
function erf(x: number): number {
  const ax = Math.abs(x);
  if (ax < 2.5) {
    let term = x;
    let sum = x;
    for (let n = 1; n < 80; n++) {
      term *= (-x * x) / n;
      sum += term / (2 * n + 1);
    }
    return (2 / Math.sqrt(Math.PI)) * sum;
  }
  // erfc(x) = exp(−x²)/√π · 1/(x + (1/2)/(x + 1/(x + (3/2)/(x + …))))
  let f = ax;
  let c = ax;
  let d = 0;
  for (let n = 1; n < 200; n++) {
    const a = n / 2;
    d = 1 / (ax + a * d);
    c = ax + a / c;
    f *= c * d;
  }
  const erfc = Math.exp(-ax * ax) / Math.sqrt(Math.PI) / f;
  return Math.sign(x) * (1 - erfc);
}

function linear(x: Float64Array, rows: number, W: Weights, prefix: string): Float64Array {
  const w = W.get(`${prefix}.weight`)!;
  const b = W.get(`${prefix}.bias`)!;
  const out = b.length;
  const inp = w.length / out;
  const y = new Float64Array(rows * out);
  for (let r = 0; r < rows; r++) {
    for (let o = 0; o < out; o++) {
      let s = b[o];
      for (let i = 0; i < inp; i++) s += x[r * inp + i] * w[o * inp + i];
      y[r * out + o] = s;
    }
  }
  return y;
}

function layerNorm(x: Float64Array, rows: number, W: Weights, prefix: string, eps: number): Float64Array {
  const gamma = W.get(`${prefix}.weight`)!;
  const beta = W.get(`${prefix}.bias`)!;
  const H = gamma.length;
  const y = new Float64Array(x.length);
  for (let r = 0; r < rows; r++) {
    let mean = 0;
    for (let i = 0; i < H; i++) mean += x[r * H + i] / H;
    let variance = 0;
    for (let i = 0; i < H; i++) variance += (x[r * H + i] - mean) ** 2 / H;
    const rstd = 1 / Math.sqrt(variance + eps);
    for (let i = 0; i < H; i++) y[r * H + i] = (x[r * H + i] - mean) * rstd * gamma[i] + beta[i];
  }
  return y;
}

/** One unpadded query through BERT, pooled and L2-normalised (padding is masked out, so it must not matter). */
function referenceEmbedding(cfg: BertConfig, W: Weights, ids: number[], pooling: Pooling): Float64Array {
  const H = cfg.hiddenSize;
  const S = ids.length;
  const heads = cfg.numHeads;
  const d = H / heads;
  const [word, pos, type] = ['word', 'position', 'token_type'].map((n) => W.get(`embeddings.${n}_embeddings.weight`)!);
  let x: Float64Array = new Float64Array(S * H);
  for (let s = 0; s < S; s++) for (let i = 0; i < H; i++) x[s * H + i] = word[ids[s] * H + i] + pos[s * H + i] + type[i];
  x = layerNorm(x, S, W, 'embeddings.LayerNorm', cfg.layerNormEps);
  for (let l = 0; l < cfg.numLayers; l++) {
    const p = `encoder.layer.${l}`;
    const [q, k, v] = ['query', 'key', 'value'].map((n) => linear(x, S, W, `${p}.attention.self.${n}`));
    const ctx = new Float64Array(S * H);
    const scores = new Float64Array(S);
    for (let h = 0; h < heads; h++) {
      for (let i = 0; i < S; i++) {
        let max = -Infinity;
        for (let j = 0; j < S; j++) {
          let dot = 0;
          for (let e = 0; e < d; e++) dot += q[i * H + h * d + e] * k[j * H + h * d + e];
          scores[j] = dot / Math.sqrt(d);
          max = Math.max(max, scores[j]);
        }
        let z = 0;
        for (let j = 0; j < S; j++) z += (scores[j] = Math.exp(scores[j] - max));
        for (let j = 0; j < S; j++) for (let e = 0; e < d; e++) ctx[i * H + h * d + e] += (scores[j] / z) * v[j * H + h * d + e];
      }
    }
    const attn = linear(ctx, S, W, `${p}.attention.output.dense`);
    for (let i = 0; i < attn.length; i++) attn[i] += x[i];
    x = layerNorm(attn, S, W, `${p}.attention.output.LayerNorm`, cfg.layerNormEps);
    const u = linear(x, S, W, `${p}.intermediate.dense`);
    for (let i = 0; i < u.length; i++) u[i] = 0.5 * u[i] * (1 + erf(u[i] * Math.SQRT1_2));
    const ffn = linear(u, S, W, `${p}.output.dense`);
    for (let i = 0; i < ffn.length; i++) ffn[i] += x[i];
    x = layerNorm(ffn, S, W, `${p}.output.LayerNorm`, cfg.layerNormEps);
  }
  const pooled = new Float64Array(H);
  const rows = pooling === 'cls' ? 1 : S;
  for (let s = 0; s < rows; s++) for (let i = 0; i < H; i++) pooled[i] += x[s * H + i] / rows;
  const norm = Math.hypot(...pooled);
  return pooled.map((t) => t / norm);
}

/** mean_b KL(Q_b ‖ softmax(cos(q_b, D_b)/γ)), with the abstention score τ/γ appended when W holds one. */
function referenceLoss(cfg: BertConfig, W: Weights, batch: LsrBatch, pooling: Pooling, gamma: number): number {
  let total = 0;
  batch.inputIds.forEach((ids, b) => {
    const e = referenceEmbedding(cfg, W, ids, pooling);
    const z = batch.candidates[b].map((D) => e.reduce((s, v, i) => s + v * D[i], 0) / gamma);
    const tau = W.get(ABSTAIN_SCORE);
    if (tau) z.push(tau[0] / gamma);
    const max = Math.max(...z);
    const logZ = max + Math.log(z.reduce((s, v) => s + Math.exp(v - max), 0));
    for (let i = 0; i < z.length; i++) {
      const q = batch.target[b][i];
      if (q > 0) total += q * (Math.log(q) - (z[i] - logZ));
    }
  });
  return total / batch.inputIds.length;
}

function randomUnit(rand: () => number, dim: number): Float32Array {
  const v = Float32Array.from({ length: dim }, () => rand() - 0.5);
  const n = Math.hypot(...v);
  return v.map((x) => x / n);
}

function lcg(seed: number): () => number {
  let s = seed;
  return () => ((s = (s * 1103515245 + 12345) % 2147483648) / 2147483648);
}

/**
 * Three queries of different lengths (so two are padded) with a repeated token, k = 4, one Q with a zero; with
 * `abstain`, Q has a fifth column (the empty passage): ∅ likeliest, uniform, and ∅ at zero.
 */
function toyBatch(vocab: number, dim: number, abstain = false): LsrBatch {
  const rand = lcg(7);
  const inputIds = [12, 7, 3].map((len) => Array.from({ length: len }, (_, i) => (i % 4 === 1 ? 9 : 5 + Math.floor(rand() * (vocab - 5)))));
  return {
    inputIds,
    candidates: inputIds.map(() => Array.from({ length: 4 }, () => randomUnit(rand, dim))),
    target: abstain
      ? [
          [0.3, 0.1, 0.1, 0.05, 0.45],
          [0.2, 0.2, 0.2, 0.2, 0.2],
          [0, 0.5, 0.3, 0.2, 0],
        ]
      : [
          [0.7, 0.1, 0.15, 0.05],
          [0.25, 0.25, 0.25, 0.25],
          [0, 0.5, 0.3, 0.2],
        ],
  };
}

const GAMMA = 0.1;
const FD_STEP = 1e-5;

for (const [pooling, abstain] of [['mean', false], ['cls', false], ['mean', true]] as const) {
  describe(`LSR training graph gradients (${pooling} pooling${abstain ? ', with an empty passage among the candidates' : ''})`, () => {
    let dir: string;
    let step: TrainStep;
    let W: Weights;
    let batch: LsrBatch;

    before(async () => {
      dir = await makeTinyBert(await mkdtemp(path.join(os.tmpdir(), 'lsr-grad-')), { maxPos: 16, pooling, seed: 3 });
      step = await TrainStep.create({
        model: dir, device: 'cpu', threads: 1, freezeWordEmbeddings: false, optimizer: { lr: 1e-3, totalSteps: 10 }, abstain: abstain ? { lr: 1e-2 } : undefined,
      });
      // Within the candidates' cosines (random unit vectors), so that ∅ takes a real share of P_R.
      if (abstain) step.weights.get(ABSTAIN_SCORE)!.data[0] = 0.15;
      W = new Map([...step.weights].map(([n, t]) => [n, Float64Array.from(t.data)]));
      batch = toyBatch(step.config.vocabSize, step.config.hiddenSize, abstain);
    });
    after(async () => {
      await step.dispose();
      await rm(dir, { recursive: true, force: true });
    });

    test('loss and query embeddings match the float64 reference', async () => {
      const { loss, queryEmb, logProbs } = await step.gradients({ ...batch, gamma: GAMMA });
      assert.ok(Math.abs(loss - referenceLoss(step.config, W, batch, pooling, GAMMA)) < 1e-5, `loss ${loss}`);
      assert.equal(logProbs[0].length, abstain ? 5 : 4, 'P_R covers the candidates and, when abstaining, ∅');
      batch.inputIds.forEach((ids, b) => {
        const ref = referenceEmbedding(step.config, W, ids, pooling);
        const worst = Math.max(...ref.map((v, i) => Math.abs(v - queryEmb[b][i])));
        assert.ok(worst < 1e-6, `query ${b} (${ids.length} tokens) differs by ${worst}`);
      });
    });

    test('every trainable tensor matches central differences on sampled entries', async (t) => {
      const { grads } = await step.gradients({ ...batch, gamma: GAMMA });
      assert.equal(grads.size, step.weights.size - 2, 'all weights but the unused pooler are trainable');
      assert.equal(grads.has(ABSTAIN_SCORE), abstain, 'the abstention score is trained exactly when abstaining');
      let worstRel = 0;
      for (const [name, g] of grads) {
        if (name.endsWith('attention.self.key.bias')) continue; // zero by softmax invariance: checked below
        const w = W.get(name)!;
        const scale = Math.max(...g.map(Math.abs));
        assert.ok(scale > 0, `${name} has an all-zero gradient`);
        // The two largest entries plus two others (for the word table: rows of tokens that occur).
        const byMagnitude = [...g.keys()].sort((a, b) => Math.abs(g[b]) - Math.abs(g[a]));
        const sample = new Set([0, 1, Math.floor(byMagnitude.length / 7), Math.floor(byMagnitude.length / 3)].filter((r) => r < g.length).map((r) => byMagnitude[r]));
        for (const i of sample) {
          const orig = w[i];
          w[i] = orig + FD_STEP;
          const plus = referenceLoss(step.config, W, batch, pooling, GAMMA);
          w[i] = orig - FD_STEP;
          const minus = referenceLoss(step.config, W, batch, pooling, GAMMA);
          w[i] = orig;
          const fd = (plus - minus) / (2 * FD_STEP);
          // Relative to the entry, floored at 1% of the tensor's largest entry (tiny entries are float32 noise).
          const rel = Math.abs(g[i] - fd) / Math.max(Math.abs(fd), 0.01 * scale);
          worstRel = Math.max(worstRel, rel);
          assert.ok(rel < 1e-4, `${name}[${i}]: graph ${g[i]}, finite differences ${fd} (relative error ${rel})`);
        }
      }
      t.diagnostic(`${pooling} pooling${abstain ? " with ∅" : ""}: worst relative gradient error ${worstRel.toExponential(2)}`);
    });

    test('the reported gradient norm is the global norm of the gradients (what AdamW clips by)', async () => {
      const { grads, gradNorm } = await step.gradients({ ...batch, gamma: GAMMA });
      const expected = Math.sqrt([...grads.values()].reduce((s, g) => s + g.reduce((a, x) => a + x * x, 0), 0));
      assert.ok(expected > 0 && Math.abs(gradNorm - expected) <= 1e-5 * expected, `graph ${gradNorm}, float64 ${expected}`);
    });

    test('the attention key bias gradient is zero in both methods (softmax ignores a per-row shift)', async () => {
      const { grads } = await step.gradients({ ...batch, gamma: GAMMA });
      for (let l = 0; l < step.config.numLayers; l++) {
        const p = `encoder.layer.${l}.attention.self`;
        const queryBiasScale = Math.max(...grads.get(`${p}.query.bias`)!.map(Math.abs));
        const keyBias = grads.get(`${p}.key.bias`)!;
        assert.ok(Math.max(...keyBias.map(Math.abs)) < 1e-5 * queryBiasScale, `${p}.key.bias: ${keyBias.slice(0, 4)}`);
        const w = W.get(`${p}.key.bias`)!;
        const orig = w[0];
        w[0] = orig + 1e-2;
        const plus = referenceLoss(step.config, W, batch, pooling, GAMMA);
        w[0] = orig;
        assert.ok(Math.abs(plus - referenceLoss(step.config, W, batch, pooling, GAMMA)) < 1e-12);
      }
    });

    test('word rows of tokens absent from the batch get exactly zero', async () => {
      const { grads } = await step.gradients({ ...batch, gamma: GAMMA });
      const g = grads.get('embeddings.word_embeddings.weight')!;
      const H = step.config.hiddenSize;
      const used = new Set(batch.inputIds.flat());
      for (let row = 0; row < step.config.vocabSize; row++) {
        const norm = Math.hypot(...g.subarray(row * H, (row + 1) * H));
        assert.equal(norm > 0, used.has(row), `row ${row}`);
      }
    });
  });
}

describe('frozen parts of the encoder', () => {
  test('freezing lower layers emits only the upper layers’ gradients, equal to the full graph’s', async () => {
    const dir = await makeTinyBert(await mkdtemp(path.join(os.tmpdir(), 'lsr-freeze-')), { maxPos: 16 });
    const optimizer = { lr: 1e-3, totalSteps: 10 };
    const full = await TrainStep.create({ model: dir, device: 'cpu', threads: 1, optimizer });
    const top = await TrainStep.create({ model: dir, device: 'cpu', threads: 1, freezeLayers: 1, optimizer });
    try {
      assert.ok(!full.trainable.includes('embeddings.word_embeddings.weight'), 'word embeddings are frozen by default');
      assert.ok(full.trainable.includes('embeddings.position_embeddings.weight'));
      assert.ok(top.trainable.length > 0 && top.trainable.every((n) => n.startsWith('encoder.layer.1.')), top.trainable.join());
      assert.equal(top.trainable.length, full.trainable.filter((n) => n.startsWith('encoder.layer.1.')).length);
      const batch = toyBatch(full.config.vocabSize, full.config.hiddenSize);
      const [a, b] = await Promise.all([full.gradients(batch), top.gradients(batch)]);
      for (const name of top.trainable) {
        const x = a.grads.get(name)!;
        const y = b.grads.get(name)!;
        const worst = Math.max(...x.map((v, i) => Math.abs(v - y[i])));
        assert.ok(worst <= 1e-6 * Math.max(...x.map(Math.abs)), `${name} differs by ${worst}`);
      }
      await assert.rejects(TrainStep.create({ model: dir, device: 'cpu', freezeLayers: 2, optimizer }), /freezeLayers must be an integer in 0\.\.1/);
    } finally {
      await full.dispose();
      await top.dispose();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
