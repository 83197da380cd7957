import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parseSafetensors } from '../sidecar/encoder/safetensors';
import { ADAPTER_FILE, AdapterTrainStep, type AdapterBatch } from '../sidecar/lsr/train-step';
import { ABSTAIN_FILE, ABSTAIN_SCORE, AbstentionHead } from '../sidecar/retrieve/abstention';

const DIM = 8;

function unit(seed: number): Float32Array {
  const v = Float32Array.from({ length: DIM }, (_, i) => Math.cos(seed * 3.7 + i * 1.3 + seed * i));
  const n = Math.hypot(...v);
  return v.map((x) => x / n);
}

function toyBatch(): AdapterBatch {
  const queries = [0, 1, 2].map((b) => unit(100 + b).map((x, i) => x * (1 + i / 4))); // not unit: the adapter normalises
  return {
    queries,
    candidates: queries.map((_, b) => [0, 1, 2, 3].map((i) => unit(b * 4 + i))),
    target: [[0.6, 0.2, 0.2, 0], [0.1, 0.7, 0.1, 0.1], [0.25, 0.25, 0.25, 0.25]],
  };
}

/** float64 loss of normalize(W·q + b) against the batch, W row-major [out, in]. */
function referenceLoss(W: Float64Array, bias: Float64Array, batch: AdapterBatch, gamma: number): number {
  let total = 0;
  batch.queries.forEach((q, b) => {
    const a = Array.from({ length: DIM }, (_, o) => bias[o] + q.reduce((s, x, i) => s + W[o * DIM + i] * x, 0));
    const n = Math.hypot(...a);
    const z = batch.candidates[b].map((D) => a.reduce((s, x, i) => s + (x / n) * D[i], 0) / gamma);
    const max = Math.max(...z);
    const logZ = max + Math.log(z.reduce((s, v) => s + Math.exp(v - max), 0));
    z.forEach((zi, i) => {
      const t = batch.target[b][i];
      if (t > 0) total += t * (Math.log(t) - (zi - logZ));
    });
  });
  return total / batch.queries.length;
}

describe('query adapter training step', () => {
  test('starts as the identity and its gradients match central differences', async () => {
    const step = await AdapterTrainStep.create({ dim: DIM, device: 'cpu', threads: 1, optimizer: { lr: 0.01, totalSteps: 10 } });
    try {
      const batch = toyBatch();
      const { queryEmb, grads, loss } = await step.gradients({ ...batch, gamma: 0.2 });
      batch.queries.forEach((q, b) => {
        const n = Math.hypot(...q);
        q.forEach((x, i) => assert.ok(Math.abs(x / n - queryEmb[b][i]) < 1e-6));
      });
      const W = Float64Array.from(step.weights.get('adapter.weight')!.data);
      const bias = Float64Array.from(step.weights.get('adapter.bias')!.data);
      assert.ok(Math.abs(loss - referenceLoss(W, bias, batch, 0.2)) < 1e-6);
      for (const [name, w] of [['adapter.weight', W], ['adapter.bias', bias]] as const) {
        const g = grads.get(name)!;
        const scale = Math.max(...g.map(Math.abs));
        for (let i = 0; i < w.length; i += 3) {
          const orig = w[i];
          w[i] = orig + 1e-6;
          const plus = referenceLoss(W, bias, batch, 0.2);
          w[i] = orig - 1e-6;
          const minus = referenceLoss(W, bias, batch, 0.2);
          w[i] = orig;
          const fd = (plus - minus) / 2e-6;
          assert.ok(Math.abs(g[i] - fd) <= 1e-4 * Math.max(Math.abs(fd), 0.01 * scale), `${name}[${i}]: ${g[i]} vs ${fd}`);
        }
      }
    } finally {
      await step.dispose();
    }
  });

  test('training lowers the loss and saves adapter.safetensors', async () => {
    const step = await AdapterTrainStep.create({ dim: DIM, device: 'cpu', threads: 1, optimizer: { lr: 0.05, totalSteps: 10, weightDecay: 0 } });
    const dir = await mkdtemp(path.join(os.tmpdir(), 'lsr-adapter-'));
    try {
      const batch = toyBatch();
      const first = await step.step(batch);
      for (let i = 0; i < 8; i++) await step.step(batch);
      const { loss } = await step.gradients(batch);
      assert.ok(loss < 0.8 * first.loss, `${first.loss} → ${loss}`);
      await step.save(dir);
      const saved = parseSafetensors(await readFile(path.join(dir, ADAPTER_FILE)), ADAPTER_FILE).tensors;
      assert.deepEqual([...saved.keys()], ['adapter.weight', 'adapter.bias']);
      assert.deepEqual(saved.get('adapter.weight')!.shape, [DIM, DIM]);
      await assert.rejects(step.step({ ...batch, queries: [batch.queries[0].subarray(1), ...batch.queries.slice(1)] }), /has 7 dimensions; the adapter has 8/);
    } finally {
      await step.dispose();
      await rm(dir, { recursive: true, force: true });
    }
  });

  test('with an empty passage among the candidates, its score moves towards the teacher and is saved apart from the adapter', async () => {
    const optimizer = { lr: 0.01, totalSteps: 10, warmupFraction: 0 };
    const step = await AdapterTrainStep.create({ dim: DIM, device: 'cpu', threads: 1, optimizer, abstain: { lr: 0.05 } });
    const dir = await mkdtemp(path.join(os.tmpdir(), 'lsr-adapter-abstain-'));
    try {
      // The teacher prefers no passage for every query.
      const batch = { ...toyBatch(), target: [0, 1, 2].map(() => [0.05, 0.05, 0.05, 0.05, 0.8]) };
      const first = await step.step(batch);
      assert.equal(first.logProbs[0].length, 5);
      for (let i = 0; i < 5; i++) await step.step(batch);
      const { loss, logProbs } = await step.gradients(batch);
      const tau = step.weights.get(ABSTAIN_SCORE)!.data[0];
      // Six updates at rates 0.05·(1, 0.9, …, 0.5) with a gradient of constant sign: τ rose by at most 0.225.
      assert.ok(tau > 0.2 && tau <= 0.225, `τ = ${tau}`);
      assert.ok(loss < first.loss && Math.exp(logProbs[0][4]) > Math.exp(first.logProbs[0][4]), `${first.loss} → ${loss}`);
      await step.save(dir);
      const adapter = parseSafetensors(await readFile(path.join(dir, ADAPTER_FILE)), ADAPTER_FILE).tensors;
      assert.deepEqual([...adapter.keys()], ['adapter.weight', 'adapter.bias']);
      assert.equal((await AbstentionHead.load(dir))?.score, tau, `${ABSTAIN_FILE} holds the score`);
      const again = await AdapterTrainStep.create({ dim: DIM, device: 'cpu', threads: 1, optimizer, abstain: { lr: 0.05 }, abstentionFrom: dir });
      assert.equal(again.weights.get(ABSTAIN_SCORE)!.data[0], tau, 'a new step starts from the saved score');
      await again.dispose();
      await assert.rejects(step.step(toyBatch()), /every query needs k = 4 candidates and k \+ 1 = 5 target values \(the empty passage last\)/);
    } finally {
      await step.dispose();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
