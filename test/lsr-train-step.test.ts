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
import { loadModelFolder } from '../sidecar/encoder/model-folder';
import { onnx } from 'onnx-proto';
import { buildBertTrainGraph } from '../sidecar/lsr/train-graph/bert-train-graph';
import { withConstantWeights } from '../sidecar/lsr/train-graph/constant-weights';
import { splitTrainGraph } from '../sidecar/lsr/train-graph/split-train-graph';
import { OPTIMIZER_FILE, TrainStep, type LsrBatch, type StepResult } from '../sidecar/lsr/train-step';
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

  test('the split plan embeds the queries in the step\'s own forward pass and gives the fused plan\'s steps', async () => {
    const model = path.join(dir, 'model');
    const split = await TrainStep.create({ model, device: 'cpu', threads: 1, optimizer });
    const fused = await TrainStep.create({ model, device: 'cpu', threads: 1, optimizer, plan: 'fused' });
    try {
      assert.equal(split.plan, 'split', 'the default on the CPU');
      assert.equal(fused.plan, 'fused');
      const batch = toyBatch(split);
      const same = (a: StepResult, b: StepResult) => {
        assert.ok(Math.abs(a.loss - b.loss) < 1e-6 && Math.abs(a.gradNorm - b.gradNorm) <= 1e-5 * b.gradNorm, `${a.loss} ${b.loss}`);
        a.queryEmb.forEach((q, i) => assert.ok(maxDiff(q, b.queryEmb[i]) < 1e-6));
        for (const name of split.trainable) assert.ok(maxDiff(split.weights.get(name)!.data, fused.weights.get(name)!.data) < 1e-6, name);
      };
      // All the begun queries, then (a query without enough candidates left out) two of them in another order.
      for (const rows of [undefined, [2, 0]]) {
        const [s, f] = [await split.begin(batch.inputIds), await fused.begin(batch.inputIds)];
        s.queryEmb.forEach((q, b) => assert.ok(maxDiff(q, f.queryEmb[b]) < 1e-6, `query ${b}`));
        const pick = <T>(xs: T[]) => (rows ? rows.map((r) => xs[r]) : xs);
        const targets = { rows, candidates: pick(batch.candidates), target: pick(batch.target) };
        const [a, b] = [await s.finish(targets), await f.finish(targets)];
        same(a, b);
        // The step's loss is computed at the weights its queries were embedded with.
        a.queryEmb.forEach((q, i) => assert.ok(maxDiff(q, pick(s.queryEmb)[i]) < 1e-6));
        await assert.rejects(s.finish(targets), /finishes once/);
      }
    } finally {
      await split.dispose();
      await fused.dispose();
    }
  });

  test('the forward half saves only the weight matmuls\' outputs and never reads the targets', async () => {
    const folder = await loadModelFolder(path.join(dir, 'model'));
    assert.equal(folder.kind, 'bert');
    if (folder.kind !== 'bert') return;
    const whole = buildBertTrainGraph(folder.config, folder.weights, { pooling: folder.pooling });
    const { forward, backward, saved } = splitTrainGraph(whole.model, whole.weightNames);
    const graph = (bytes: Uint8Array) => onnx.ModelProto.decode(bytes).graph!;
    const producers = new Map(graph(whole.model).node!.flatMap((n) => n.output!.map((o) => [o, n.opType!] as const)));
    // Per layer: the query, key, value, attention output, intermediate and output projections.
    assert.equal(saved.length, 6 * folder.config.numLayers);
    assert.ok(saved.every((name) => producers.get(name) === 'MatMul'), saved.map((n) => producers.get(n)).join());
    const forwardInputs = graph(forward).input!.map((i) => i.name!);
    assert.ok(!forwardInputs.some((n) => ['cand_emb', 'target_q', 'gamma'].includes(n)), forwardInputs.join());
    assert.deepEqual(graph(forward).output!.map((o) => o.name), ['query_emb', ...saved]);
    assert.deepEqual(graph(backward).output!.map((o) => o.name), graph(whole.model).output!.map((o) => o.name));
  });

  test('frozen weights become constants of the graph: not fed, same embeddings', async () => {
    const graph = buildBertEncoder(step.config, step.weights, { pooling: step.pooling, weightsAsInputs: true });
    const frozen = new Set(['embeddings.word_embeddings.weight', 'encoder.layer.0.attention.self.query.weight']);
    const [fed, baked] = await Promise.all([graph, withConstantWeights(graph, step.weights, frozen)].map((m) => ort.InferenceSession.create(m)));
    try {
      assert.deepEqual(baked.inputNames, fed.inputNames.filter((n) => !frozen.has(n)));
      const ids = step.tokenize(QUERIES.slice(0, 2));
      const dims = [2, Math.max(...ids.map((r) => r.length))];
      const tokens = {
        input_ids: new ort.Tensor('int64', BigInt64Array.from(ids.flatMap((r) => [...r, ...new Array(dims[1] - r.length).fill(0)]), BigInt), dims),
        attention_mask: new ort.Tensor('int64', BigInt64Array.from(ids.flatMap((r) => [...r.map(() => 1n), ...new Array(dims[1] - r.length).fill(0n)])), dims),
      };
      const feeds = (s: ort.InferenceSession) => ({
        ...tokens,
        ...Object.fromEntries(s.inputNames.filter((n) => step.weights.has(n)).map((n) => [n, new ort.Tensor('float32', step.weights.get(n)!.data, step.weights.get(n)!.shape)])),
      });
      const [a, b] = [await fed.run(feeds(fed)), await baked.run(feeds(baked))];
      assert.deepEqual(b.sentence_embedding.data, a.sentence_embedding.data);
    } finally {
      await fed.release();
      await baked.release();
    }
  });
});
