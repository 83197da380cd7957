import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import * as ort from 'onnxruntime-node';
import { makeTinyBert } from '../scripts/make-tiny-bert';
import type { BertConfig, Pooling } from '../sidecar/encoder/bert-config';
import { buildBertEncoder, type BertGraphOptions } from '../sidecar/encoder/graph/bert-graph';
import { toFloat16Bits } from '../sidecar/encoder/graph/graph-builder';
import { ALL_FUSIONS, NO_FUSIONS } from '../sidecar/encoder/graph/inference-layers';
import { quantizePerColumn } from '../sidecar/encoder/graph/quantized-linear';
import { loadModelFolder, type BertFolder } from '../sidecar/encoder/model-folder';
import type { Float32Tensor } from '../sidecar/encoder/safetensors';

/**
 * Independent reference forward pass: plain loops in float64 over one unpadded sequence, written from the BERT
 * definition (not from the graph), so padding, masking and batching in the ONNX graph are checked too.
 */
function referenceEmbedding(cfg: BertConfig, w: ReadonlyMap<string, Float32Tensor>, ids: number[], pooling: Pooling): number[] {
  const H = cfg.hiddenSize;
  const get = (name: string) => w.get(name)!.data;
  const row = (m: Float32Array, r: number) => Array.from(m.subarray(r * H, (r + 1) * H));
  const layerNorm = (x: number[], prefix: string) => {
    const mean = x.reduce((a, b) => a + b, 0) / x.length;
    const variance = x.reduce((a, b) => a + (b - mean) ** 2, 0) / x.length;
    const g = get(`${prefix}.weight`), b = get(`${prefix}.bias`);
    return x.map((v, i) => ((v - mean) / Math.sqrt(variance + cfg.layerNormEps)) * g[i] + b[i]);
  };
  const linear = (x: number[], prefix: string) => {
    const W = w.get(`${prefix}.weight`)!, b = get(`${prefix}.bias`);
    const [out, inp] = W.shape;
    return Array.from({ length: out }, (_, o) => {
      let s = b[o];
      for (let i = 0; i < inp; i++) s += W.data[o * inp + i] * x[i];
      return s;
    });
  };
  const gelu = (v: number) => 0.5 * v * (1 + erf(v / Math.SQRT2));

  let h = ids.map((id, t) => {
    const [word, pos, type] = [row(get('embeddings.word_embeddings.weight'), id), row(get('embeddings.position_embeddings.weight'), t), row(get('embeddings.token_type_embeddings.weight'), 0)];
    return layerNorm(word.map((v, i) => v + pos[i] + type[i]), 'embeddings.LayerNorm');
  });
  const heads = cfg.numHeads, d = H / heads;
  for (let l = 0; l < cfg.numLayers; l++) {
    const p = `encoder.layer.${l}`;
    const q = h.map((x) => linear(x, `${p}.attention.self.query`));
    const k = h.map((x) => linear(x, `${p}.attention.self.key`));
    const v = h.map((x) => linear(x, `${p}.attention.self.value`));
    const context = h.map((_, t) => {
      const out = new Array<number>(H).fill(0);
      for (let hd = 0; hd < heads; hd++) {
        const scores = k.map((kk) => {
          let s = 0;
          for (let i = hd * d; i < (hd + 1) * d; i++) s += q[t][i] * kk[i];
          return s / Math.sqrt(d);
        });
        const max = Math.max(...scores);
        const exps = scores.map((s) => Math.exp(s - max));
        const total = exps.reduce((a, b) => a + b, 0);
        exps.forEach((e, u) => {
          for (let i = hd * d; i < (hd + 1) * d; i++) out[i] += (e / total) * v[u][i];
        });
      }
      return out;
    });
    h = h.map((x, t) => {
      const attn = linear(context[t], `${p}.attention.output.dense`);
      const a = layerNorm(attn.map((val, i) => val + x[i]), `${p}.attention.output.LayerNorm`);
      const ffn = linear(linear(a, `${p}.intermediate.dense`).map(gelu), `${p}.output.dense`);
      return layerNorm(ffn.map((val, i) => val + a[i]), `${p}.output.LayerNorm`);
    });
  }
  const pooled = pooling === 'cls' ? h[0] : h[0].map((_, i) => h.reduce((s, x) => s + x[i], 0) / h.length);
  const norm = Math.hypot(...pooled);
  return pooled.map((x) => x / norm);
}

/** erf to ~1e-15 (Taylor series near 0, continued fraction for erfc further out); Math has no erf. */
function erf(x: number): number {
  const ax = Math.abs(x);
  if (ax < 2.5) {
    let term = x, sum = x;
    for (let n = 1; n < 80; n++) {
      term *= (-x * x) / n;
      sum += term / (2 * n + 1);
    }
    return (2 / Math.sqrt(Math.PI)) * sum;
  }
  let f = 0;
  for (let n = 60; n >= 1; n--) f = n / 2 / (ax + f);
  const erfc = Math.exp(-ax * ax) / Math.sqrt(Math.PI) / (ax + f);
  return Math.sign(x) * (1 - erfc);
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

/** Deterministic token ids in [5, vocab) (skips the special tokens), framed by [CLS]=2 … [SEP]=3 as in the small vocab. */
function randomIds(len: number, vocab: number, seed: number): number[] {
  let s = seed;
  const body = Array.from({ length: len - 2 }, () => {
    s = (s * 1103515245 + 12345) % 2 ** 31;
    return 5 + (s % (vocab - 5));
  });
  return [2, ...body, 3];
}

async function runPadded(session: ort.InferenceSession, rows: number[][], output: string): Promise<ort.Tensor> {
  const seq = Math.max(...rows.map((r) => r.length));
  const ids = new BigInt64Array(rows.length * seq);
  const mask = new BigInt64Array(rows.length * seq);
  rows.forEach((r, i) => r.forEach((id, t) => {
    ids[i * seq + t] = BigInt(id);
    mask[i * seq + t] = 1n;
  }));
  const feeds = { input_ids: new ort.Tensor('int64', ids, [rows.length, seq]), attention_mask: new ort.Tensor('int64', mask, [rows.length, seq]) };
  return (await session.run(feeds))[output];
}

describe('BERT graph vs reference forward pass', () => {
  let dir: string;
  let folder: BertFolder;
  let session: ort.InferenceSession;
  const TOLERANCE = 1e-5;

  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'replug-graph-'));
    const loaded = await loadModelFolder(await makeTinyBert(path.join(dir, 'tiny'), { seed: 7 }));
    assert.equal(loaded.kind, 'bert');
    folder = loaded as BertFolder;
    session = await ort.InferenceSession.create(buildBertEncoder(folder.config, folder.weights, { pooling: 'mean' }), { intraOpNumThreads: 1 });
  });
  after(async () => {
    await session?.release();
    await rm(dir, { recursive: true, force: true });
  });

  const cases: Array<[string, number[]]> = [
    ['batch 1', [9]],
    ['batch 3, equal lengths', [12, 12, 12]],
    ['batch 4, mixed lengths (padding)', [3, 17, 8, 30]],
    ['batch 2 at the full 64 positions', [64, 40]],
  ];
  for (const [name, lengths] of cases) {
    test(name, async () => {
      const rows = lengths.map((len, i) => randomIds(len, folder.config.vocabSize, 100 + i * 17 + len));
      const out = await runPadded(session, rows, 'sentence_embedding');
      assert.deepEqual(out.dims, [rows.length, folder.config.hiddenSize]);
      const data = out.data as Float32Array;
      rows.forEach((ids, i) => {
        const ref = referenceEmbedding(folder.config, folder.weights, ids, 'mean');
        const diff = maxAbsDiff(data.subarray(i * 32, (i + 1) * 32), ref);
        assert.ok(diff < TOLERANCE, `row ${i} (length ${ids.length}) differs by ${diff}`);
      });
    });
  }

  test('CLS pooling', async () => {
    const cls = await ort.InferenceSession.create(buildBertEncoder(folder.config, folder.weights, { pooling: 'cls' }));
    const rows = [randomIds(6, folder.config.vocabSize, 1), randomIds(11, folder.config.vocabSize, 2)];
    const data = (await runPadded(cls, rows, 'sentence_embedding')).data as Float32Array;
    rows.forEach((ids, i) => {
      const diff = maxAbsDiff(data.subarray(i * 32, (i + 1) * 32), referenceEmbedding(folder.config, folder.weights, ids, 'cls'));
      assert.ok(diff < TOLERANCE, `row ${i} differs by ${diff}`);
    });
    await cls.release();
  });

  test('weights as graph inputs give the same embeddings', async () => {
    const bytes = buildBertEncoder(folder.config, folder.weights, { pooling: 'mean', weightsAsInputs: true });
    const s = await ort.InferenceSession.create(bytes);
    const names = s.inputNames.filter((n) => n !== 'input_ids' && n !== 'attention_mask');
    assert.equal(names.length, 37); // 5 embedding + 16 per layer × 2; the pooler is not used
    const rows = [randomIds(5, folder.config.vocabSize, 3), randomIds(9, folder.config.vocabSize, 4)];
    const seq = 9;
    const ids = new BigInt64Array(2 * seq), mask = new BigInt64Array(2 * seq);
    rows.forEach((r, i) => r.forEach((id, t) => ((ids[i * seq + t] = BigInt(id)), (mask[i * seq + t] = 1n))));
    const feeds: Record<string, ort.Tensor> = { input_ids: new ort.Tensor('int64', ids, [2, seq]), attention_mask: new ort.Tensor('int64', mask, [2, seq]) };
    for (const n of names) feeds[n] = new ort.Tensor('float32', folder.weights.get(n)!.data, folder.weights.get(n)!.shape);
    const fromInputs = (await s.run(feeds)).sentence_embedding.data as Float32Array;
    const fromInitializers = (await runPadded(session, rows, 'sentence_embedding')).data as Float32Array;
    assert.ok(maxAbsDiff(fromInputs, fromInitializers) < 1e-6);
    await s.release();
  });

  test('last_hidden_state output keeps per-token states of the real tokens', async () => {
    const s = await ort.InferenceSession.create(buildBertEncoder(folder.config, folder.weights, { pooling: 'mean', output: 'last_hidden_state' }));
    const rows = [randomIds(4, folder.config.vocabSize, 5), randomIds(7, folder.config.vocabSize, 6)];
    const out = await runPadded(s, rows, 'last_hidden_state');
    assert.deepEqual(out.dims, [2, 7, 32]);
    // Mean of the first row's 4 real tokens, normalised, must match the reference (padding must not leak in).
    const data = out.data as Float32Array;
    const mean = Array.from({ length: 32 }, (_, i) => [0, 1, 2, 3].reduce((a, t) => a + data[t * 32 + i], 0) / 4);
    const norm = Math.hypot(...mean);
    const diff = maxAbsDiff(mean.map((x) => x / norm), referenceEmbedding(folder.config, folder.weights, rows[0], 'mean'));
    assert.ok(diff < TOLERANCE, `differs by ${diff}`);
    await s.release();
  });
});

describe('inference graph variants vs the reference forward pass', () => {
  let dir: string;
  let folder: BertFolder;
  const rows = [[9], [3, 17, 8, 30], [64, 40]];

  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'replug-graph-variants-'));
    folder = (await loadModelFolder(await makeTinyBert(path.join(dir, 'tiny'), { seed: 7 }))) as BertFolder;
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  /** Worst cosine and largest element difference to the reference over padded batches of mixed lengths. */
  async function agreement(opts: Omit<BertGraphOptions, 'pooling'>): Promise<{ minCos: number; maxDiff: number }> {
    const session = await ort.InferenceSession.create(buildBertEncoder(folder.config, folder.weights, { pooling: 'mean', ...opts }), { intraOpNumThreads: 1 });
    let minCos = 1;
    let maxDiff = 0;
    try {
      for (const lengths of rows) {
        const ids = lengths.map((len, i) => randomIds(len, folder.config.vocabSize, 300 + i * 13 + len));
        const data = (await runPadded(session, ids, 'sentence_embedding')).data as Float32Array;
        ids.forEach((row, i) => {
          const ref = referenceEmbedding(folder.config, folder.weights, row, 'mean');
          const got = data.subarray(i * 32, (i + 1) * 32);
          minCos = Math.min(minCos, ref.reduce((a, x, j) => a + x * got[j], 0));
          maxDiff = Math.max(maxDiff, maxAbsDiff(got, ref));
        });
      }
    } finally {
      await session.release();
    }
    return { minCos, maxDiff };
  }

  test('fp32 with every fused contrib op (SkipLayerNormalization, BiasGelu, MultiHeadAttention) is exact', async () => {
    const { maxDiff } = await agreement({ fusions: ALL_FUSIONS });
    assert.ok(maxDiff < 1e-5, `differs by ${maxDiff}`);
  });

  for (const [name, fusions] of [['no fusions', NO_FUSIONS], ['all fusions', ALL_FUSIONS]] as const) {
    test(`int8 (${name}) stays within cosine 0.995 of the reference`, async () => {
      const { minCos } = await agreement({ precision: 'int8', fusions });
      assert.ok(minCos > 0.995, `cosine ${minCos}`);
    });
  }

  test('fp16 (the CUDA graph; ORT runs it on the CPU too) stays within 1e-2 of the reference', async () => {
    const { minCos, maxDiff } = await agreement({ precision: 'fp16' });
    assert.ok(maxDiff < 1e-2 && minCos > 0.9999, `differs by ${maxDiff}, cosine ${minCos}`);
  });

  test('a graph with weights as inputs refuses other precisions and fusions (training shares only the plain layers)', () => {
    assert.throws(() => buildBertEncoder(folder.config, folder.weights, { pooling: 'mean', weightsAsInputs: true, precision: 'int8' }), /plain fp32 layers only/);
    assert.throws(() => buildBertEncoder(folder.config, folder.weights, { pooling: 'mean', weightsAsInputs: true, fusions: ALL_FUSIONS }), /plain fp32 layers only/);
  });
});

describe('weight conversions', () => {
  test('float16 bits round to nearest even, saturate to infinity and keep subnormals', () => {
    const bits = toFloat16Bits(new Float32Array([0, -0, 1, -2, 65504, 65520, 1e6, 0.1, 2 ** -24, 2 ** -26, 1 + 2 ** -11, 1 + 3 * 2 ** -11, NaN, -Infinity]));
    assert.deepEqual(
      [...bits].map((b) => b.toString(16)),
      ['0', '8000', '3c00', 'c000', '7bff', '7c00', '7c00', '2e66', '1', '0', '3c00', '3c02', '7e00', 'fc00'],
    );
  });

  test('per-column int8 quantisation is off by at most half a step per weight', () => {
    const data = Float32Array.from({ length: 12 }, (_, i) => Math.sin(i * 1.7) * (1 + (i % 3)));
    const { data: q, scales } = quantizePerColumn({ shape: [4, 3], data });
    for (let i = 0; i < 12; i++) assert.ok(Math.abs(q[i] * scales[i % 3] - data[i]) <= scales[i % 3] / 2 + 1e-7);
    for (let j = 0; j < 3; j++) assert.equal(Math.max(...[0, 1, 2, 3].map((r) => Math.abs(q[r * 3 + j]))), 127);
  });
});

