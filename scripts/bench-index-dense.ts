/**
 * Dense indexing on a real code corpus (default: this project's sidecar/ folder), contenders on the same passages
 * in one run:
 *   ours int8            — `index` as a user runs it (WorkspaceIndex.update from an empty index: walk, chunk, embed,
 *                          BM25, HNSW, save) with --precision int8;
 *   ours fp32            — the same at --precision fp32 (the CPU default);
 *   transformers.js fp32 — its feature-extraction pipeline on the passages that index cut, batch 32, in corpus order;
 *   ours int8, one session (with --one-session) — int8 in one session with all the threads, the layout before the
 *                          worker pool (its threads meet at a barrier after every op, which a busy machine stalls).
 * Rounds alternate between the machine as it is ("quiet") and the machine with one busy-loop process per core
 * ("contended"; `--conditions quiet` skips it), and within a round the contenders take turns, so each condition's
 * comparison is side by side. Prints passages/s (best round and the range), the ratios to transformers.js, and what
 * padding costs.
 *
 *   npm run bench:index-dense -- [ROOT] [--model DIR] [--rounds N] [--threads N] [--conditions quiet,contended] [--one-session]
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import type { FeatureExtractionPipeline } from '@huggingface/transformers';
import type { Encoder } from '../sidecar/encoder/encoder';
import { loadModelFolder, type BertFolder } from '../sidecar/encoder/model-folder';
import { loadEncoder } from '../sidecar/encoder/ort-encoder';
import { EncoderTokenizer } from '../sidecar/encoder/tokenizer';
import { WorkspaceIndex } from '../sidecar/index/workspace-index';
import { makeTinyBert, MINILM_SHAPE } from './make-tiny-bert';
import { peerEmbed, transformersJsPeer } from './transformers-js-peer';

const PEER_BATCH = 32;
/** How the indexer feeds the encoder (workspace-index.ts EMBED_BATCH, ort-encoder.ts DEFAULT_BATCH_SIZE). */
const INDEX_GROUP = 256;
const ENCODER_BATCH = 16;

type Condition = 'quiet' | 'contended';

async function main(): Promise<void> {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      model: { type: 'string' },
      rounds: { type: 'string' },
      threads: { type: 'string' },
      conditions: { type: 'string', default: 'quiet,contended' },
      'one-session': { type: 'boolean' },
    },
  });
  const conditions = values.conditions!.split(',').map((c) => {
    if (c !== 'quiet' && c !== 'contended') throw new Error(`--conditions takes quiet and/or contended, not ${c}`);
    return c as Condition;
  });
  const root = path.resolve(positionals[0] ?? 'sidecar');
  const rounds = Number(values.rounds ?? 2);
  const threads = Number(values.threads ?? Math.min(os.availableParallelism(), 8));
  const work = await mkdtemp(path.join(os.tmpdir(), 'replug-bench-dense-'));
  try {
    const modelDir = values.model ?? (await makeTinyBert(path.join(work, 'minilm'), { ...MINILM_SHAPE, seed: 1 }));
    const bert = (await loadModelFolder(modelDir)) as BertFolder;
    if (bert.kind !== 'bert') throw new Error(`${modelDir} is not a BERT safetensors folder`);
    const oursInt8 = await loadEncoder({ model: modelDir, device: 'cpu', threads, precision: 'int8' });
    const oursFp32 = await loadEncoder({ model: modelDir, device: 'cpu', threads, precision: 'fp32' });
    const oneSession = values['one-session'] ? await loadEncoder({ model: modelDir, device: 'cpu', threads, precision: 'int8', workers: 1 }) : undefined;
    const peer = await transformersJsPeer(bert, work, threads);

    // The passages the index cuts are the peer's input too.
    const texts = await indexOnce(oursInt8, root, path.join(work, 'probe-index')).then((r) => r.texts);
    const lengths = texts.map((t) => new EncoderTokenizer(bert.tokenizer, bert.maxTokens).encode(t).length);
    console.log(
      `corpus: ${root} (${texts.length} passages, mean ${(lengths.reduce((a, b) => a + b, 0) / lengths.length).toFixed(0)} tokens), ` +
        `MiniLM shape (${bert.config.numLayers}×${bert.config.hiddenSize}), random weights, ${threads} threads, ` +
        `${os.availableParallelism()} CPUs (${os.cpus()[0]?.model ?? 'cpu'})`,
    );
    printPadding(lengths);

    const contenders: Record<string, (dir: string) => Promise<number>> = {
      'ours int8': async (dir) => (await indexOnce(oursInt8, root, dir)).seconds,
      'ours fp32': async (dir) => (await indexOnce(oursFp32, root, dir)).seconds,
      'transformers.js fp32': () => peerOnce(peer, texts),
    };
    if (oneSession) contenders['ours int8, one session'] = async (dir) => (await indexOnce(oneSession, root, dir)).seconds;
    const rates = new Map<string, number[]>();
    console.log(`(each round: one full index or embedding run per contender, ${conditions.join(' then ')})`);
    const load = new Map<Condition, number[]>();
    for (let round = 0; round < rounds; round++) {
      for (const condition of conditions) {
        const hogs = condition === 'contended' ? busyLoops(os.availableParallelism()) : [];
        try {
          for (const [name, run] of Object.entries(contenders)) {
            const seconds = await run(path.join(work, `index-${round}-${condition}-${name.replace(/\W+/g, '-')}`));
            push(rates, `${condition}|${name}`, texts.length / seconds);
          }
          push(load, condition, os.loadavg()[0]);
        } finally {
          for (const hog of hogs) hog.kill('SIGKILL');
        }
        console.log(`round ${round + 1}/${rounds} ${condition}: ${Object.keys(contenders).map((n) => `${n} ${rates.get(`${condition}|${n}`)!.at(-1)!.toFixed(1)}`).join(', ')} passages/s`);
      }
    }

    console.log('\ncondition  contender              passages/s (best; range)   vs transformers.js');
    for (const condition of conditions) {
      const peerBest = Math.max(...rates.get(`${condition}|transformers.js fp32`)!);
      for (const name of Object.keys(contenders)) {
        const r = rates.get(`${condition}|${name}`)!;
        const best = Math.max(...r);
        const range = `${Math.min(...r).toFixed(1)}–${best.toFixed(1)}`;
        console.log(`${condition.padEnd(10)} ${name.padEnd(22)} ${best.toFixed(1).padStart(8)} (${range})`.padEnd(61) + `${(best / peerBest).toFixed(2)}×`);
      }
    }
    const best = (c: Condition, name: string) => Math.max(...rates.get(`${c}|${name}`)!);
    for (const c of conditions) {
      console.log(
        `${c}: int8/transformers.js ${(best(c, 'ours int8') / best(c, 'transformers.js fp32')).toFixed(2)}×, ` +
          `fp32/transformers.js ${(best(c, 'ours fp32') / best(c, 'transformers.js fp32')).toFixed(2)}×, int8/fp32 ${(best(c, 'ours int8') / best(c, 'ours fp32')).toFixed(2)}×; ` +
          `1-min load average during its rounds ${fmt(load.get(c)!)}`,
      );
    }
    console.log('goal (issue 10): int8 ≥ 2× transformers.js on a quiet machine, ≥ 1.5× contended');
    await Promise.all([oursInt8.dispose(), oneSession?.dispose(), oursFp32.dispose(), peer.dispose()]);
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

/** A full `index` of `root` into the empty folder `dir`: seconds of update() and the passages' texts. */
async function indexOnce(encoder: Encoder, root: string, dir: string): Promise<{ seconds: number; texts: string[] }> {
  const index = await WorkspaceIndex.open(dir, { encoder, encoderSpec: 'bench' });
  try {
    const start = performance.now();
    const report = await index.update([root]);
    const seconds = (performance.now() - start) / 1000;
    if (report.passagesEmbedded !== report.passages) throw new Error(`only ${report.passagesEmbedded} of ${report.passages} passages were embedded`);
    return { seconds, texts: index.passages().map((p) => p.text) };
  } finally {
    await index.close();
    await rm(dir, { recursive: true, force: true });
  }
}

async function peerOnce(peer: FeatureExtractionPipeline, texts: string[]): Promise<number> {
  const start = performance.now();
  for (let i = 0; i < texts.length; i += PEER_BATCH) await peerEmbed(peer, texts.slice(i, i + PEER_BATCH));
  return (performance.now() - start) / 1000;
}

/**
 * Padding: tokens run (each batch padded to its longest member) over real tokens. Compute in the matmuls, which
 * are nearly all of it, grows with the tokens run, so the excess is what padding costs in time.
 */
function printPadding(lengths: number[]): void {
  const padded = (batches: number[][]) => batches.reduce((a, b) => a + b.length * Math.max(...b), 0);
  const chunks = (xs: number[], size: number) => Array.from({ length: Math.ceil(xs.length / size) }, (_, i) => xs.slice(i * size, (i + 1) * size));
  const real = lengths.reduce((a, b) => a + b, 0);
  const ours = chunks(lengths, INDEX_GROUP).flatMap((group) => chunks([...group].sort((a, b) => a - b), ENCODER_BATCH));
  const peer = chunks(lengths, PEER_BATCH);
  const pct = (n: number) => `+${((100 * (n - real)) / real).toFixed(1)}%`;
  console.log(
    `padding (tokens run over real tokens): ours ${pct(padded(ours))} (length-sorted within groups of ${INDEX_GROUP}, batch ${ENCODER_BATCH}); ` +
      `transformers.js ${pct(padded(peer))} (batch ${PEER_BATCH} in corpus order); sorting the whole corpus would give ${pct(padded(chunks([...lengths].sort((a, b) => a - b), ENCODER_BATCH)))}`,
  );
}

/** One busy-looping process per core: the contention of a machine that is doing other work. */
function busyLoops(n: number): ChildProcess[] {
  return Array.from({ length: n }, () => spawn(process.execPath, ['-e', 'for (;;) {}'], { stdio: 'ignore' }));
}

function push<K>(map: Map<K, number[]>, key: K, value: number): void {
  map.set(key, [...(map.get(key) ?? []), value]);
}

function fmt(xs: number[]): string {
  return xs.map((x) => x.toFixed(1)).join('/');
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
