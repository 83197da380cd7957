/**
 * LSR training benchmark on an all-MiniLM-L6-v2-shaped BERT (random weights), in two parts:
 * 1. the training step alone: ORT graph (forward + loss + backward) and AdamW, word embeddings frozen and all trainable;
 * 2. the whole REPLUG loop (trainLsr) on a real code tree against the deterministic copy-LM teacher over HTTP:
 *    seconds per step split into encode / retrieve / LM wait / graph / optimizer.
 *   npm run bench:train -- [--steps 5] [--batch 4] [--tokens 128] [--k 20] [--threads N] [--device cpu|auto|cuda]
 *                          [--corpus node_modules/execa/lib]
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import type { Device } from '../sidecar/encoder/ort-encoder';
import { TrainStep, type LsrBatch } from '../sidecar/lsr/train-step';
import { loadEncoder } from '../sidecar/encoder/ort-encoder';
import { WorkspaceIndex } from '../sidecar/index/workspace-index';
import { LmScorer } from '../sidecar/lm/scorer';
import { LmServer } from '../sidecar/lm/serve';
import { DEFAULT_LSR_SETTINGS, trainLsr, type StepMetrics } from '../sidecar/lsr/lsr-trainer';
import { DEFAULT_QUERY_SOURCE, loadQueries } from '../sidecar/lsr/query-source';
import { CopyLm } from '../test/fixtures/lm/copy-lm';
import { MINILM_SHAPE, makeTinyBert } from './make-tiny-bert';

interface StepTiming {
  graphMs: number;
  optimizerMs: number;
}

function randomBatch(step: TrainStep, batch: number, tokens: number, k: number, seed: number): LsrBatch {
  let s = seed;
  const rand = () => ((s = (s * 1103515245 + 12345) % 2147483648) / 2147483648);
  const dim = step.config.hiddenSize;
  const unit = () => {
    const v = Float32Array.from({ length: dim }, () => rand() - 0.5);
    const n = Math.hypot(...v);
    return v.map((x) => x / n);
  };
  // [CLS] … [SEP] with ordinary word-piece ids in between (bert-base-uncased: 101, 102; words from 1000 up).
  const ids = () => [101, ...Array.from({ length: tokens - 2 }, () => 1000 + Math.floor(rand() * (step.config.vocabSize - 1000))), 102];
  return {
    inputIds: Array.from({ length: batch }, ids),
    candidates: Array.from({ length: batch }, () => Array.from({ length: k }, unit)),
    target: Array.from({ length: batch }, () => {
      const logits = Array.from({ length: k }, () => 3 * rand());
      const z = logits.reduce((a, l) => a + Math.exp(l), 0);
      return logits.map((l) => Math.exp(l) / z);
    }),
  };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      steps: { type: 'string', default: '5' },
      batch: { type: 'string', default: '4' },
      tokens: { type: 'string', default: '128' },
      k: { type: 'string', default: '20' },
      threads: { type: 'string' },
      device: { type: 'string', default: 'cpu' },
      corpus: { type: 'string', default: 'node_modules/execa/lib' },
    },
  });
  const int = (name: 'steps' | 'batch' | 'tokens' | 'k' | 'threads', min: number) => {
    const n = Number(values[name]);
    if (!Number.isInteger(n) || n < min) throw new Error(`--${name} must be an integer ≥ ${min}, got ${values[name]}`);
    return n;
  };
  const [steps, batch, tokens, k] = [int('steps', 1), int('batch', 1), int('tokens', 3), int('k', 2)];
  const threads = values.threads === undefined ? undefined : int('threads', 1);
  if (!['cpu', 'auto', 'cuda'].includes(values.device!)) throw new Error('--device must be cpu, auto or cuda');

  const dir = await mkdtemp(path.join(os.tmpdir(), 'replug-bench-train-'));
  try {
    const model = await makeTinyBert(path.join(dir, 'model'), { ...MINILM_SHAPE });
    console.log(`model: all-MiniLM-L6-v2 shape (random weights), batch ${batch} × ${tokens} tokens, k = ${k}, ${steps} timed steps after 1 warm-up`);
    console.log(`machine: ${os.cpus()[0]?.model ?? 'unknown CPU'}, ${os.availableParallelism()} CPUs, load average before ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}`);
    const results: Record<string, unknown> = {};
    for (const [label, freezeWordEmbeddings] of [['word embeddings frozen', true], ['all trainable', false]] as const) {
      const step = await TrainStep.create({
        model, device: values.device as Device, threads, freezeWordEmbeddings, optimizer: { lr: 1e-5, totalSteps: steps + 1 },
      });
      try {
        const params = step.trainable.reduce((a, n) => a + step.weights.get(n)!.data.length, 0);
        const timings: StepTiming[] = [];
        const forwardMs: number[] = [];
        for (let i = 0; i <= steps; i++) {
          const b = randomBatch(step, batch, tokens, k, i + 1);
          // Forward only (the inference graph on the same batch): the train/forward ratio stays readable on a busy machine.
          const t = performance.now();
          await step.embed(b.inputIds);
          const r = await step.step(b);
          if (i === 0) continue;
          forwardMs.push(performance.now() - t - r.graphMs - r.optimizerMs);
          timings.push({ graphMs: r.graphMs, optimizerMs: r.optimizerMs });
        }
        const graph = median(timings.map((t) => t.graphMs));
        const adam = median(timings.map((t) => t.optimizerMs));
        const total = median(timings.map((t) => t.graphMs + t.optimizerMs));
        const forward = median(forwardMs);
        console.log(
          `${label} (${(params / 1e6).toFixed(1)}M trainable, ${step.provider}): ${(total / 1000).toFixed(3)} s/step median ` +
            `= graph ${graph.toFixed(0)} ms + AdamW ${adam.toFixed(0)} ms (steps: ${timings.map((t) => (t.graphMs + t.optimizerMs).toFixed(0)).join(', ')} ms); ` +
            `forward only ${forward.toFixed(0)} ms, graph/forward ${(graph / forward).toFixed(1)}×`,
        );
        results[label] = {
          trainableParams: params, provider: step.provider, medianStepMs: total, medianGraphMs: graph, medianOptimizerMs: adam, medianForwardMs: forward, steps: timings,
        };
      } finally {
        await step.dispose();
      }
    }
    results['REPLUG loop'] = await benchLoop(dir, model, { steps, batch, tokens, k, corpus: values.corpus!, device: values.device as Device });
    console.log(`load average after ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}`);
    console.log(JSON.stringify({ batch, tokens, k, threads: threads ?? null, results }));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** The whole loop: index the corpus with the model, then time trainLsr steps (the first is a warm-up). */
async function benchLoop(
  dir: string,
  model: string,
  o: { steps: number; batch: number; tokens: number; k: number; corpus: string; device: Device },
): Promise<Record<string, number>> {
  const encoder = await loadEncoder({ model, device: o.device });
  const index = await WorkspaceIndex.open(path.join(dir, 'index'), { encoder, encoderSpec: model });
  const built = await index.update([o.corpus]);
  const passages = index.passages();
  await index.close();
  await encoder.dispose();
  const server = new LmServer(new CopyLm('copy-lm', 16384));
  const url = await server.listen(0);
  try {
    const scorer = new LmScorer({ baseUrl: url, model: 'copy-lm', continuationTokens: 4 * o.tokens });
    const queries = await loadQueries(passages, { ...DEFAULT_QUERY_SOURCE, split: 'train', contextTokens: o.tokens, continuationTokens: o.tokens });
    const steps: StepMetrics[] = [];
    await trainLsr({
      indexDir: path.join(dir, 'index'),
      model,
      output: path.join(dir, 'out'),
      scorer,
      queries,
      device: o.device,
      settings: { ...DEFAULT_LSR_SETTINGS, batchSize: o.batch, k: o.k, steps: o.steps + 1, checkpointEvery: 1000 },
      onEvent: (e) => {
        if (e.type === 'step') steps.push(e);
      },
    });
    const timed = steps.slice(1);
    const part = (key: keyof StepMetrics['seconds']) => median(timed.map((m) => m.seconds[key]));
    const split = { encode: part('encode'), retrieve: part('retrieve'), lm: part('lm'), graph: part('train'), optimizer: part('optimizer'), total: part('total') };
    console.log(
      `REPLUG loop on ${o.corpus} (${built.passages} passages, ${queries.length} queries, batch ${o.batch}, k = ${o.k}, copy-LM over HTTP): ` +
        `${split.total.toFixed(3)} s/step median = encode ${split.encode.toFixed(3)} + retrieve ${split.retrieve.toFixed(3)} + LM wait ${split.lm.toFixed(3)} + ` +
        `graph ${split.graph.toFixed(3)} + optimizer ${split.optimizer.toFixed(3)}; without LM ${(split.total - split.lm).toFixed(3)} s/step`,
    );
    return split;
  } finally {
    await server.close();
  }
}

main().catch((err) => {
  console.error((err as Error).message);
  process.exit(1);
});
