import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import * as ort from 'onnxruntime-node';
import { makeTinyBert } from '../scripts/make-tiny-bert';
import { buildBertEncoder } from '../sidecar/encoder/graph/bert-graph';
import { loadEncoder } from '../sidecar/encoder/ort-encoder';
import { parseSafetensors } from '../sidecar/encoder/safetensors';
import { OPTIMIZER_FILE, TrainStep, type LsrBatch } from '../sidecar/lsr/train-step';
import { cudaProviderInstalled, gpuFacts } from '../sidecar/encoder/cuda-provider';

const QUERIES = ['parse a csv file', 'return the max', 'async function fetch(url) { return await get(url) }', 'x'];
const optimizer = { lr: 2e-3, totalSteps: 20, warmupFraction: 0 };

function unit(seed: number, dim: number): Float32Array {
  const v = Float32Array.from({ length: dim }, (_, i) => Math.sin(seed * 12.9898 + i * 78.233) * 43758.5453 % 1);
  const n = Math.hypot(...v);
  return v.map((x) => x / n);
}

/** Each query's teacher puts most mass on candidate (b mod k). */
function toyBatch(step: TrainStep, k = 5): LsrBatch {
  const dim = step.config.hiddenSize;
  return {
    inputIds: step.tokenize(QUERIES),
    candidates: QUERIES.map((_, b) => Array.from({ length: k }, (_, i) => unit(b * k + i + 1, dim))),
    target: QUERIES.map((_, b) => Array.from({ length: k }, (_, i) => (i === b % k ? 0.8 : 0.2 / (k - 1)))),
  };
}

const maxDiff = (a: ArrayLike<number>, b: ArrayLike<number>) => Math.max(...Array.from(a, (v, i) => Math.abs(v - b[i])));

describe('TrainStep', () => {
  let dir: string;
  let step: TrainStep;

  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'lsr-step-'));
    await makeTinyBert(path.join(dir, 'model'), { maxPos: 64, prefixBert: true });
    step = await TrainStep.create({ model: path.join(dir, 'model'), device: 'cpu', threads: 1, optimizer });
  });
  after(async () => {
    await step.dispose();
    await rm(dir, { recursive: true, force: true });
  });

  test('the training graph embeds queries exactly as the inference graph does', async () => {
    const batch = toyBatch(step);
    const { queryEmb } = await step.gradients(batch);
    const session = await ort.InferenceSession.create(buildBertEncoder(step.config, step.weights, { pooling: step.pooling }));
    try {
      for (const [b, ids] of batch.inputIds.entries()) {
        const dims = [1, ids.length];
        const out = await session.run({
          input_ids: new ort.Tensor('int64', BigInt64Array.from(ids, BigInt), dims),
          attention_mask: new ort.Tensor('int64', new BigInt64Array(ids.length).fill(1n), dims),
        });
        // Alone (no padding) in the inference graph vs padded inside the batch in the training graph.
        assert.ok(maxDiff(out.sentence_embedding.data as Float32Array, queryEmb[b]) < 1e-6, `query ${b}`);
      }
    } finally {
      await session.release();
    }
  });

  test('one session takes any batch size and query length; padding does not change a query', async () => {
    const ids = step.tokenize(QUERIES);
    const together = await step.embed(ids);
    for (const [b, row] of ids.entries()) {
      const [alone] = await step.embed([row]);
      assert.ok(maxDiff(alone, together[b]) < 1e-6, `query ${b}`);
    }
    const batch = toyBatch(step);
    const single = await step.gradients({ inputIds: [batch.inputIds[2]], candidates: [batch.candidates[2]], target: [batch.target[2]] });
    assert.ok(maxDiff(single.queryEmb[0], together[2]) < 1e-6);
  });

  test('the loss falls over a few updates on a fixed problem, and embed() follows the new weights', async () => {
    const batch = toyBatch(step);
    const before = await step.embed(batch.inputIds);
    const losses: number[] = [];
    for (let i = 0; i < 8; i++) {
      const r = await step.step(batch);
      losses.push(r.loss);
      assert.equal(r.step, i + 1);
      assert.ok(r.gradNorm > 0 && r.lr > 0 && r.graphMs > 0 && r.optimizerMs >= 0);
    }
    const after = await step.gradients(batch);
    assert.ok(after.loss < 0.7 * losses[0], `loss ${losses.map((l) => l.toFixed(4)).join(' → ')} → ${after.loss.toFixed(4)}`);
    const moved = await step.embed(batch.inputIds);
    assert.ok(maxDiff(moved[0], before[0]) > 1e-3, 'embeddings changed');
    assert.ok(maxDiff(moved[0], after.queryEmb[0]) < 1e-6, 'embed() and the training graph agree on the new weights');
  });

  test('a saved folder keeps the bert. names and loads in the inference encoder and for resuming', async () => {
    const out = path.join(dir, 'tuned');
    await step.save(out, { optimizer: true });
    const names = [...parseSafetensors(await readFile(path.join(out, 'model.safetensors')), 'model').tensors.keys()];
    assert.ok(names.length > 0 && names.every((n) => n.startsWith('bert.')), names.slice(0, 3).join());
    const encoder = await loadEncoder({ model: out, device: 'cpu', precision: 'fp32', threads: 1 });
    try {
      const [fromEncoder, fromStep] = [await encoder.embed(QUERIES), await step.embed(step.tokenize(QUERIES))];
      for (let b = 0; b < QUERIES.length; b++) assert.ok(maxDiff(fromEncoder[b], fromStep[b]) < 1e-6, `query ${b}`);
    } finally {
      await encoder.dispose();
    }
    const resumed = await TrainStep.create({ model: out, device: 'cpu', threads: 1, optimizer, resumeOptimizer: true });
    try {
      assert.equal(resumed.optimizerStep, step.optimizerStep);
      assert.ok(step.optimizerStep > 0);
      const [a, b] = await Promise.all([resumed.step(toyBatch(resumed)), step.step(toyBatch(step))]);
      assert.equal(a.lr, b.lr);
      for (const name of step.trainable) assert.ok(maxDiff(resumed.weights.get(name)!.data, step.weights.get(name)!.data) < 1e-6, name);
    } finally {
      await resumed.dispose();
    }
    await assert.rejects(readFile(path.join(out, 'model.onnx')), /ENOENT/);
    assert.ok((await readFile(path.join(out, OPTIMIZER_FILE))).length > 0);
  });

  test('device auto runs on the CPU of a machine without a GPU and says nothing; device cuda says what to do', { skip: (gpuFacts().nvidiaGpu || cudaProviderInstalled()) && 'a GPU or the CUDA provider is here' }, async () => {
    const auto = await TrainStep.create({ model: path.join(dir, 'model'), device: 'auto', threads: 1, optimizer });
    try {
      assert.equal(auto.provider, 'cpu');
      assert.equal(auto.fallbackReason, undefined);
    } finally {
      await auto.dispose();
    }
    await assert.rejects(TrainStep.create({ model: path.join(dir, 'model'), device: 'cuda', optimizer }), /--device cuda: .*CUDA provider library.*or use --device cpu/);
  });

  test('malformed batches are refused with a message that says what to fix', async () => {
    const good = toyBatch(step);
    await assert.rejects(step.step({ ...good, target: good.target.map((row) => Array.from(row, (q) => q * 2)) }), /sum to 2.*softmax/);
    await assert.rejects(step.step({ ...good, candidates: [good.candidates[0].slice(0, 3), ...good.candidates.slice(1)] }), /every query needs k = 3/);
    await assert.rejects(step.step({ ...good, inputIds: [[1, 99999], ...good.inputIds.slice(1)] }), /outside the vocabulary/);
    await assert.rejects(step.step({ ...good, inputIds: [new Array(65).fill(5), ...good.inputIds.slice(1)] }), /64 positions/);
    await assert.rejects(step.step({ ...good, gamma: 0 }), /gamma must be > 0/);
    await assert.rejects(step.step({ ...good, candidates: good.candidates.map((c) => c.map((e) => e.subarray(1))) }), /has 31 dimensions; the encoder has 32/);
  });
});
