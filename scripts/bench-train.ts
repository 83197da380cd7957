/**
 * LSR training benchmark on an all-MiniLM-L6-v2-shaped BERT (random weights): the way steps ran before and the
 * way they run now, side by side in one process on the same batches, per phase.
 *   before: the fused plan (queries embedded by the inference graph for retrieval, then one graph runs forward and
 *           backward), AdamW on the main thread alone;
 *   after:  the default (on the CPU the split plan: retrieval uses the step's own forward half, the backward half
 *           reuses its matmul outputs), AdamW split across threads.
 * 1. the step alone, word embeddings frozen and all trainable: encode (the queries' embeddings for retrieval),
 *    graph, optimizer in wall time, the process's CPU time (steadier on a shared machine), and the bytes a step
 *    moves across ORT's boundary (host↔device copies on a GPU);
 * 2. the whole REPLUG loop (trainLsr) on a real code tree against the deterministic copy-LM teacher over HTTP,
 *    before and after alternating for --rounds rounds: seconds per step by phase.
 *   npm run bench:train -- [--steps 5] [--rounds 3] [--batch 4] [--tokens 128] [--k 20] [--threads N]
 *                          [--device cpu|auto|cuda] [--corpus node_modules/execa/lib]
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import type { Device } from '../sidecar/encoder/ort-encoder';
import { TrainStep, type LsrBatch, type TrainStepOptions } from '../sidecar/lsr/train-step';
import { loadEncoder } from '../sidecar/encoder/ort-encoder';
import { WorkspaceIndex } from '../sidecar/index/workspace-index';
import { LmScorer } from '../sidecar/lm/scorer';
import { LmServer } from '../sidecar/lm/serve';
import { DEFAULT_LSR_SETTINGS, trainLsr, type StepMetrics } from '../sidecar/lsr/lsr-trainer';
import type { StepRunner } from '../sidecar/lsr/query-trainer';
import { DEFAULT_QUERY_SOURCE, loadQueries } from '../sidecar/lsr/query-source';
import { CopyLm } from '../test/fixtures/lm/copy-lm';
import { MINILM_SHAPE, makeTinyBert } from './make-tiny-bert';

const VARIANTS: Record<'before' | 'after', StepRunner> = {
  before: { plan: 'fused', optimizerThreads: 1 },
  after: {},
};
type Variant = keyof typeof VARIANTS;
type Phases = Record<string, number>;
type Transfer = { in: number; out: number };

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

/** CPU time of the whole process (every thread: ORT's, the optimizer's), in ms: steadier than wall time on a busy machine. */
const cpuMs = () => {
  const { user, system } = process.cpuUsage();
  return (user + system) / 1000;
};
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const medians = (runs: Phases[]): Phases => Object.fromEntries(Object.keys(runs[0]).map((key) => [key, median(runs.map((r) => r[key]))]));

/** One table: a row per variant, a column per phase, and the after/before ratio. */
function printTable(title: string, unit: string, rows: Record<Variant, Phases>, digits: number): void {
  const keys = Object.keys(rows.before);
  const width = Math.max(12, ...keys.map((k) => k.length + 2));
  const cell = (v: string) => v.padStart(width);
  console.log(`${title}\n${''.padEnd(14)}${keys.map(cell).join('')}`);
  for (const variant of ['before', 'after'] as const) console.log(`${variant.padEnd(14)}${keys.map((k) => cell(rows[variant][k].toFixed(digits))).join('')}  ${unit}`);
  console.log(`${'after/before'.padEnd(14)}${keys.map((k) => cell(rows.before[k] > 0 ? (rows.after[k] / rows.before[k]).toFixed(2) : '-')).join('')}`);
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      steps: { type: 'string', default: '5' },
      rounds: { type: 'string', default: '3' },
      batch: { type: 'string', default: '4' },
      tokens: { type: 'string', default: '128' },
      k: { type: 'string', default: '20' },
      threads: { type: 'string' },
      device: { type: 'string', default: 'cpu' },
      corpus: { type: 'string', default: 'node_modules/execa/lib' },
    },
  });
  const int = (name: 'steps' | 'rounds' | 'batch' | 'tokens' | 'k' | 'threads', min: number) => {
    const n = Number(values[name]);
    if (!Number.isInteger(n) || n < min) throw new Error(`--${name} must be an integer ≥ ${min}, got ${values[name]}`);
    return n;
  };
  const [steps, rounds, batch, tokens, k] = [int('steps', 1), int('rounds', 1), int('batch', 1), int('tokens', 3), int('k', 2)];
  const threads = values.threads === undefined ? undefined : int('threads', 1);
  if (!['cpu', 'auto', 'cuda'].includes(values.device!)) throw new Error('--device must be cpu, auto or cuda');
  const device = values.device as Device;

  const dir = await mkdtemp(path.join(os.tmpdir(), 'replug-bench-train-'));
  try {
    const model = await makeTinyBert(path.join(dir, 'model'), { ...MINILM_SHAPE });
    console.log(`model: all-MiniLM-L6-v2 shape (random weights), batch ${batch} × ${tokens} tokens, k = ${k}, ${steps} timed steps after 1 warm-up`);
    console.log(`before: fused plan, AdamW on 1 thread; after: ${device === 'cpu' ? 'split plan' : "the device's plan"}, AdamW on all threads`);
    console.log(`machine: ${os.cpus()[0]?.model ?? 'unknown CPU'}, ${os.availableParallelism()} CPUs, load average before ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}`);
    const results: Record<string, unknown> = {};
    for (const [label, freezeWordEmbeddings] of [['word embeddings frozen', true], ['all trainable', false]] as const) {
      const common: TrainStepOptions = { model, device, threads, freezeWordEmbeddings, optimizer: { lr: 1e-5, totalSteps: steps + 1 } };
      results[label] = await benchStep(label, steps, common, (step, i) => randomBatch(step, batch, tokens, k, i + 1));
    }
    results['REPLUG loop'] = await benchLoop(dir, model, { steps, rounds, batch, tokens, k, corpus: values.corpus!, device });
    console.log(`load average after ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}`);
    console.log(JSON.stringify({ batch, tokens, k, threads: threads ?? null, results }));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** Before and after take turns on the same batches; the first step of each is a warm-up. */
async function benchStep(
  label: string, steps: number, common: TrainStepOptions, batchFor: (step: TrainStep, i: number) => LsrBatch,
): Promise<{ phases: Record<Variant, Phases>; bytes: Record<Variant, Transfer> }> {
  const trainers = {} as Record<Variant, TrainStep>;
  try {
    for (const variant of ['before', 'after'] as const) trainers[variant] = await TrainStep.create({ ...common, ...VARIANTS[variant] });
    const timings: Record<Variant, Phases[]> = { before: [], after: [] };
    const bytes = {} as Record<Variant, Transfer>;
    for (let i = 0; i <= steps; i++) {
      for (const variant of ['before', 'after'] as const) {
        const step = trainers[variant];
        const b = batchFor(step, i);
        const sent = { ...step.transferred };
        const t = performance.now();
        const c0 = cpuMs();
        const pending = await step.begin(b.inputIds);
        const encode = performance.now() - t;
        const c1 = cpuMs();
        const r = await pending.finish(b);
        const c2 = cpuMs();
        if (i === 0) continue;
        timings[variant].push({
          encode, graph: r.graphMs, optimizer: r.optimizerMs, total: performance.now() - t,
          'cpu encode': c1 - c0, 'cpu graph+opt': c2 - c1, 'cpu total': c2 - c0,
        });
        bytes[variant] = { in: step.transferred.in - sent.in, out: step.transferred.out - sent.out };
      }
    }
    const rows = { before: medians(timings.before), after: medians(timings.after) };
    const { after } = trainers;
    const params = after.trainable.reduce((a, n) => a + after.weights.get(n)!.data.length, 0);
    printTable(`\n${label} (${(params / 1e6).toFixed(1)}M trainable, ${after.provider}), median ms per step (wall, then process CPU)`, 'ms', rows, 0);
    const mb = (v: Variant) => `${(bytes[v].in / 1e6).toFixed(0)} MB in, ${(bytes[v].out / 1e6).toFixed(0)} MB out`;
    console.log(`fed to / fetched from ONNX Runtime per step (host↔device copies on a GPU): before ${mb('before')}; after ${mb('after')}`);
    return { phases: rows, bytes };
  } finally {
    for (const step of Object.values(trainers)) await step.dispose();
  }
}

/** The whole loop: index the corpus with the model, then time trainLsr steps (the first of each run is a warm-up). */
async function benchLoop(
  dir: string,
  model: string,
  o: { steps: number; rounds: number; batch: number; tokens: number; k: number; corpus: string; device: Device },
): Promise<Record<Variant, Phases>> {
  const encoder = await loadEncoder({ model, device: o.device });
  const index = await WorkspaceIndex.open(path.join(dir, 'index'), { encoder, encoderSpec: model });
  const built = await index.update([o.corpus]);
  const passages = index.passages();
  await index.close();
  await encoder.dispose();
  const server = new LmServer(new CopyLm('copy-lm', 16384));
  const url = await server.listen(0);
  try {
    const queries = await loadQueries(passages, { ...DEFAULT_QUERY_SOURCE, split: 'train', contextTokens: o.tokens, continuationTokens: o.tokens });
    const timings: Record<Variant, Phases[]> = { before: [], after: [] };
    for (let round = 0; round < o.rounds; round++) {
      for (const variant of ['before', 'after'] as const) {
        const steps: StepMetrics[] = [];
        await trainLsr({
          indexDir: path.join(dir, 'index'),
          model,
          output: path.join(dir, `out-${variant}-${round}`),
          // A scorer per run: a shared one would answer the later runs' identical batches from its cache.
          scorer: new LmScorer({ baseUrl: url, model: 'copy-lm', continuationTokens: 4 * o.tokens }),
          queries,
          device: o.device,
          stepRunner: VARIANTS[variant],
          settings: { ...DEFAULT_LSR_SETTINGS, batchSize: o.batch, k: o.k, steps: o.steps + 1, checkpointEvery: 1000 },
          onEvent: (e) => {
            if (e.type === 'step') steps.push(e);
          },
        });
        for (const { seconds: s } of steps.slice(1)) {
          timings[variant].push({ encode: s.encode, retrieve: s.retrieve, 'LM wait': s.lm, graph: s.train, optimizer: s.optimizer, total: s.total, 'without LM': s.total - s.lm });
        }
      }
    }
    const rows = { before: medians(timings.before), after: medians(timings.after) };
    printTable(
      `\nREPLUG loop on ${o.corpus} (${built.passages} passages, ${queries.length} queries, batch ${o.batch}, k = ${o.k}, copy-LM over HTTP), ` +
        `median s per step over ${o.rounds} × ${o.steps} steps each`,
      's',
      rows,
      3,
    );
    return rows;
  } finally {
    await server.close();
  }
}

main().catch((err) => {
  console.error((err as Error).message);
  process.exit(1);
});
