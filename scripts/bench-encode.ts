/**
 * Encoder throughput at 128 tokens, batch 1/8/32, MiniLM shape (random weights):
 *   raw     — ORT session.run on pre-made tensors (the ceiling);
 *   full    — OrtEncoder.embed: tokenize + sort + pad + run on the worker + pool;
 *   tfjs    — @huggingface/transformers feature-extraction pipeline (mean pooling, normalize) on an ONNX export
 *             of the same weights (our graph with a last_hidden_state output), with its default session options.
 * Also prints the longest event-loop stall seen during `full` (the worker must keep the main thread free).
 *
 *   node --import tsx scripts/bench-encode.ts [--threads N] [--seconds S] [--model DIR]
 */
import { mkdir, mkdtemp, rm, writeFile, copyFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import * as ort from 'onnxruntime-node';
import { disableOrtTelemetry } from '../sidecar/encoder/ort-environment';
import { env, pipeline } from '@huggingface/transformers';
import { makeTinyBert, MINILM_SHAPE } from './make-tiny-bert';
import { buildBertEncoder } from '../sidecar/encoder/graph/bert-graph';
import { loadModelFolder, type BertFolder } from '../sidecar/encoder/model-folder';
import { loadEncoder } from '../sidecar/encoder/ort-encoder';
import { encoderSessionOptions } from '../sidecar/encoder/ort-worker';
import { EncoderTokenizer } from '../sidecar/encoder/tokenizer';

const SEQ = 128;
const BATCHES = [1, 8, 32];
const ROUNDS = 4;

/** Runs `step` (which handles `items` sequences) for `seconds`; returns sequences per second. */
async function rate(seconds: number, items: number, step: () => Promise<unknown>): Promise<number> {
  const start = performance.now();
  let done = 0;
  while (performance.now() - start < seconds * 1000) {
    await step();
    done += items;
  }
  return (done * 1000) / (performance.now() - start);
}

/**
 * The machine is shared, so load changes from second to second: the contenders take turns in short rounds and
 * each keeps its best round, which compares them under the same conditions.
 */
async function contest(rounds: number, seconds: number, contenders: Record<string, [items: number, step: () => Promise<unknown>]>): Promise<Record<string, number>> {
  const best: Record<string, number> = {};
  for (const [name, [, step]] of Object.entries(contenders)) {
    await step(); // warm-up
    best[name] = 0;
  }
  for (let r = 0; r < rounds; r++) {
    for (const [name, [items, step]] of Object.entries(contenders)) best[name] = Math.max(best[name], await rate(seconds / rounds, items, step));
  }
  return best;
}

/** Texts of exactly SEQ tokens with [CLS]/[SEP]: SEQ−2 whole-word vocabulary entries, each one token. */
function makeTexts(tokenizer: EncoderTokenizer, vocab: string[], count: number): string[] {
  const words = vocab.filter((w) => /^[a-z]{3,}$/.test(w) && tokenizer.countTokens(w) === 1).slice(0, 5000);
  let s = 42;
  const pick = () => words[(s = (s * 1103515245 + 12345) % 2 ** 31) % words.length];
  return Array.from({ length: count }, () => Array.from({ length: SEQ - 2 }, pick).join(' '));
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { threads: { type: 'string' }, seconds: { type: 'string' }, model: { type: 'string' } } });
  const threads = Number(values.threads ?? Math.min(os.availableParallelism(), 8));
  const seconds = Number(values.seconds ?? 4);
  const work = await mkdtemp(path.join(os.tmpdir(), 'replug-bench-'));
  try {
    const modelDir = values.model ?? (await makeTinyBert(path.join(work, 'minilm'), { ...MINILM_SHAPE, seed: 1 }));
    const folder = await loadModelFolder(modelDir);
    if (folder.kind !== 'bert') throw new Error(`${modelDir} is not a BERT safetensors folder`);
    const bert = folder as BertFolder;
    const graph = buildBertEncoder(bert.config, bert.weights, { pooling: bert.pooling });

    // transformers.js layout: onnx/model.onnx with last_hidden_state, next to config and tokenizer files.
    const tfjsDir = path.join(work, 'tfjs', 'model');
    await mkdir(path.join(tfjsDir, 'onnx'), { recursive: true });
    for (const f of ['config.json', 'tokenizer.json', 'tokenizer_config.json']) await copyFile(path.join(modelDir, f), path.join(tfjsDir, f));
    await writeFile(path.join(tfjsDir, 'onnx', 'model.onnx'), buildBertEncoder(bert.config, bert.weights, { pooling: bert.pooling, output: 'last_hidden_state' }));
    env.allowRemoteModels = false;
    env.localModelPath = path.join(work, 'tfjs');

    const tokenizer = new EncoderTokenizer(bert.tokenizer, bert.maxTokens);
    const vocab = Object.keys((bert.tokenizer.json.model as { vocab: Record<string, number> }).vocab);
    const texts = makeTexts(tokenizer, vocab, 128);
    if (tokenizer.encode(texts[0]).length !== SEQ) throw new Error('bench texts are not 128 tokens long');

    disableOrtTelemetry();
    const session = await ort.InferenceSession.create(graph, encoderSessionOptions(threads));
    // transformers.js as a user would run it: its own session defaults (ORT's, with spinning threads) at our thread count.
    const extractor = await pipeline('feature-extraction', 'model', { dtype: 'fp32', session_options: { intraOpNumThreads: threads } });
    const t = performance.now();
    for (const text of texts) tokenizer.encode(text);
    const tokenizeMs = (performance.now() - t) / texts.length;
    console.log(`MiniLM shape (${bert.config.numLayers}×${bert.config.hiddenSize}), ${SEQ} tokens, ${threads} threads, ${seconds}s per cell, ${os.cpus()[0]?.model ?? 'cpu'}, load ${os.loadavg()[0].toFixed(1)}; tokenize ${tokenizeMs.toFixed(2)} ms/text`);
    console.log('batch |   raw seq/s |  full seq/s | full/raw | tfjs seq/s | full/tfjs | loop stall in full');
    for (const b of BATCHES) {
      const ids = new BigInt64Array(b * SEQ);
      tokenizer.encode(texts[0]).forEach((id, i) => ids.fill(BigInt(id), i, i + 1));
      for (let r = 1; r < b; r++) ids.copyWithin(r * SEQ, 0, SEQ);
      const feeds = {
        input_ids: new ort.Tensor('int64', ids, [b, SEQ]),
        attention_mask: new ort.Tensor('int64', new BigInt64Array(b * SEQ).fill(1n), [b, SEQ]),
      };
      const encoder = await loadEncoder({ model: modelDir, batchSize: b, threads, device: 'cpu' });
      // Several batches per call, as the indexer sends them; the stall probe must keep firing meanwhile.
      const chunk = texts.slice(0, Math.max(b * 4, 8));
      const tfjsTexts = texts.slice(0, b);
      // Longest gap between timer ticks while embed() is in flight: the worker must keep the event loop free.
      let stall = 0;
      let inFull = false;
      let last = performance.now();
      const probe = setInterval(() => {
        const now = performance.now();
        if (inFull) stall = Math.max(stall, now - last);
        last = now;
      }, 5);
      const fullStep = async () => {
        inFull = true;
        last = performance.now();
        await encoder.embed(chunk);
        inFull = false;
      };
      const { raw, full, tfjs } = await contest(ROUNDS, seconds, {
        raw: [b, () => session.run(feeds)],
        full: [chunk.length, fullStep],
        tfjs: [b, () => extractor(tfjsTexts, { pooling: 'mean', normalize: true })],
      });
      clearInterval(probe);
      if (b === BATCHES[0]) {
        const [ours] = await encoder.embed([texts[0]]);
        const theirs = (await extractor([texts[0]], { pooling: 'mean', normalize: true })).data as Float32Array;
        const diff = Math.max(...ours.map((x, i) => Math.abs(x - theirs[i])));
        console.log(`(same input, max |ours − transformers.js| = ${diff.toExponential(1)})`);
      }
      await encoder.dispose();
      const f = (x: number) => x.toFixed(1).padStart(11);
      console.log(`${String(b).padStart(5)} | ${f(raw)} | ${f(full)} | ${(full / raw).toFixed(2).padStart(8)} | ${f(tfjs).slice(1)} | ${(full / tfjs).toFixed(2).padStart(9)} | ${stall.toFixed(0).padStart(11)} ms`);
    }
    await session.release();
    await extractor.dispose();
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
