/**
 * Which execution provider loads on this machine and how fast the encoder and the LSR training step run there.
 * For `--device auto` and for each provider (CUDA, WebGPU, CPU): whether it loads, and why not, and its start-up
 * time; encode throughput at fp32 and at the provider's fast precision (int8 on the CPU, fp16 on a GPU); on a GPU
 * the fp16 graph with ORT's fused ops against the plain ops; and the training step. Short by design (a GPU machine
 * is lent for minutes): about a minute with a GPU, under a minute with only a CPU. MiniLM shape, random weights, 128-token texts, batch 32.
 *
 *   npm run bench:gpu -- [--seconds S] [--model DIR]
 */
import { readdirSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import * as ort from 'onnxruntime-node';
import { gpuFacts, providersFor, type Provider } from '../sidecar/encoder/cuda-provider';
import { disableOrtTelemetry } from '../sidecar/encoder/ort-environment';
import { buildBertEncoder } from '../sidecar/encoder/graph/bert-graph';
import { ALL_FUSIONS, NO_FUSIONS } from '../sidecar/encoder/graph/inference-layers';
import { loadModelFolder, type BertFolder } from '../sidecar/encoder/model-folder';
import { loadEncoder, type RuntimeEncoder } from '../sidecar/encoder/ort-encoder';
import { TrainStep } from '../sidecar/lsr/train-step';
import { makeTinyBert, MINILM_SHAPE } from './make-tiny-bert';

const BATCH = 32;
const TOKENS = 128;
const TRAIN = { batch: 4, k: 20, steps: 3 };

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { seconds: { type: 'string' }, model: { type: 'string' } } });
  const seconds = Number(values.seconds ?? 5);
  disableOrtTelemetry(); // before the first session, which may be opened here rather than in a worker
  const work = await mkdtemp(path.join(os.tmpdir(), 'replug-bench-gpu-'));
  try {
    const model = values.model ?? (await makeTinyBert(path.join(work, 'minilm'), { ...MINILM_SHAPE, seed: 1 }));
    let t = performance.now();
    const facts = gpuFacts();
    const factsMs = performance.now() - t;
    console.log(`machine: ${os.cpus()[0]?.model ?? 'cpu'}, ${os.availableParallelism()} CPUs; GPUs: ${nvidiaGpuNames().join(', ') || 'none listed by the NVIDIA driver'}`);
    console.log(
      `found (in ${factsMs.toFixed(1)} ms, nothing loaded): NVIDIA GPU ${yes(facts.nvidiaGpu)}, CUDA provider installed ${yes(facts.cudaProvider)}, ` +
        `WebGPU plausible ${yes(facts.webgpu)} → --device auto tries ${providersFor('auto').join(', ')}`,
    );

    t = performance.now();
    const auto = await loadEncoder({ model, device: 'auto' });
    console.log(
      `--device auto: ${auto.provider} at ${auto.precision} in ${(performance.now() - t).toFixed(0)} ms` +
        (auto.fallbackReason ? ` (${auto.fallbackReason})` : ' (nothing to report)'),
    );
    await auto.dispose();

    const texts = Array.from({ length: BATCH * 4 }, (_, i) => Array.from({ length: TOKENS - 2 }, (_, j) => WORDS[(i * 7 + j) % WORDS.length]).join(' '));
    console.log(`\nprovider  loads  start-up  encode seq/s: fp32 | int8 (CPU) or fp16 (GPU)  fp16 fused vs plain ops  train step (${TRAIN.batch}×${TOKENS}, k=${TRAIN.k})`);
    for (const provider of ['cuda', 'webgpu', 'cpu'] as const) {
      t = performance.now();
      let fp32: RuntimeEncoder;
      try {
        fp32 = await loadEncoder({ model, device: provider, batchSize: BATCH, precision: 'fp32' });
      } catch (err) {
        console.log(`${provider.padEnd(9)} no     ${(err as Error).message}`); // in full: the reason is the point
        continue;
      }
      const startup = performance.now() - t;
      if (fp32.countTokens(texts[0]) !== TOKENS - 2) throw new Error('bench texts are not 128 tokens long');
      const rateFp32 = await encodeRate(fp32, texts, seconds);
      await fp32.dispose();
      const fast = provider === 'cpu' ? 'int8' : 'fp16';
      const rateFast = await loadEncoder({ model, device: provider, batchSize: BATCH, precision: fast }).then(
        async (encoder) => {
          try {
            return `${(await encodeRate(encoder, texts, seconds)).toFixed(1)} ${fast}`;
          } finally {
            await encoder.dispose();
          }
        },
        (err: Error) => `${fast} fails: ${firstLine(err.message)}`,
      );
      const fusions =
        provider === 'cpu' ? 'n/a (CPU: bench:encode --fusions)' : await fusionComparison(model, provider, seconds).catch((err: Error) => `fails: ${firstLine(err.message)}`);
      const train = await trainStepSeconds(model, provider);
      console.log(
        `${provider.padEnd(9)} yes    ${`${startup.toFixed(0)} ms`.padStart(8)}  ${`${rateFp32.toFixed(1)} fp32 | ${rateFast}`.padEnd(44)} ` +
          `${fusions.padEnd(24)} ${train}`,
      );
    }
    if (!facts.nvidiaGpu) console.log('\nno NVIDIA GPU on this machine: only the CPU provider can load here; run this again where there is one.');
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

async function encodeRate(encoder: RuntimeEncoder, texts: string[], seconds: number): Promise<number> {
  await encoder.embed(texts.slice(0, BATCH)); // warm-up (GPU kernels, arena)
  const start = performance.now();
  let done = 0;
  while (performance.now() - start < seconds * 1000) {
    await encoder.embed(texts);
    done += texts.length;
  }
  return (done * 1000) / (performance.now() - start);
}

/** fp16 with every fused contrib op vs fp16 with plain ops, raw sessions on the GPU provider: seq/s each. */
async function fusionComparison(model: string, provider: Provider, seconds: number): Promise<string> {
  const bert = (await loadModelFolder(model)) as BertFolder;
  const ids = new BigInt64Array(BATCH * TOKENS).map((_, i) => BigInt(1000 + ((i * 7919) % 20000)));
  const feeds = { input_ids: new ort.Tensor('int64', ids, [BATCH, TOKENS]), attention_mask: new ort.Tensor('int64', new BigInt64Array(BATCH * TOKENS).fill(1n), [BATCH, TOKENS]) };
  const rates: string[] = [];
  for (const fusions of [ALL_FUSIONS, NO_FUSIONS]) {
    const session = await ort.InferenceSession.create(buildBertEncoder(bert.config, bert.weights, { pooling: bert.pooling, precision: 'fp16', fusions }), {
      executionProviders: [provider],
      graphOptimizationLevel: 'all',
    });
    await session.run(feeds);
    const start = performance.now();
    let done = 0;
    while (performance.now() - start < (seconds * 1000) / 2) {
      await session.run(feeds);
      done += BATCH;
    }
    rates.push(((done * 1000) / (performance.now() - start)).toFixed(0));
    await session.release();
  }
  return `${rates[0]} vs ${rates[1]} seq/s`;
}

/** Median seconds of a training step (forward, loss, backward, AdamW) after one warm-up step. */
async function trainStepSeconds(model: string, provider: Provider): Promise<string> {
  let step: TrainStep;
  try {
    step = await TrainStep.create({ model, device: provider, optimizer: { lr: 1e-5, totalSteps: TRAIN.steps + 1 } });
  } catch (err) {
    return `fails: ${firstLine((err as Error).message)}`;
  }
  try {
    const dim = step.config.hiddenSize;
    const unit = (seed: number) => {
      const v = Float32Array.from({ length: dim }, (_, i) => Math.sin(seed * 97 + i * 13));
      const norm = Math.hypot(...v);
      return v.map((x) => x / norm);
    };
    const batch = {
      inputIds: step.tokenize(Array.from({ length: TRAIN.batch }, (_, i) => Array.from({ length: TOKENS - 2 }, (_, j) => WORDS[(i + j) % WORDS.length]).join(' '))),
      candidates: Array.from({ length: TRAIN.batch }, (_, q) => Array.from({ length: TRAIN.k }, (_, d) => unit(q * TRAIN.k + d))),
      target: Array.from({ length: TRAIN.batch }, () => Array.from({ length: TRAIN.k }, (_, d) => (d === 0 ? 0.5 : 0.5 / (TRAIN.k - 1)))),
    };
    await step.step(batch);
    const times: number[] = [];
    for (let i = 0; i < TRAIN.steps; i++) {
      const start = performance.now();
      await step.step(batch);
      times.push((performance.now() - start) / 1000);
    }
    return `${times.sort((a, b) => a - b)[Math.floor(times.length / 2)].toFixed(3)} s on ${step.provider}`;
  } finally {
    await step.dispose();
  }
}

/** GPU names from the NVIDIA driver's /proc entries (Linux); empty elsewhere. */
function nvidiaGpuNames(): string[] {
  try {
    const dir = '/proc/driver/nvidia/gpus';
    return readdirSync(dir).map((bus) => /Model:\s*(.*)/.exec(readFileSync(path.join(dir, bus, 'information'), 'utf8'))?.[1]?.trim() ?? bus);
  } catch {
    return [];
  }
}

const WORDS = 'the function returns a value from every call of this module when its input is valid'.split(' ');

function yes(b: boolean): string {
  return b ? 'yes' : 'no';
}

function firstLine(message: string): string {
  const line = message.split('\n')[0];
  return line.length > 160 ? `${line.slice(0, 159)}…` : line;
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
