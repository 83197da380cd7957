import { readFile } from 'node:fs/promises';
import os from 'node:os';
import { cudaFallbackReason, gpuFacts, providerError, providersFor, webgpuMissing, type Device, type Provider } from './cuda-provider';
import type { RuntimeEncoder } from './encoder';
export type { RuntimeEncoder } from './encoder';
import { AdaptedEncoder, isAdapterFolder, readAdapterConfig } from './query-adapter';
import { buildBertEncoder } from './graph/bert-graph';
import type { Pooling } from './bert-config';
import { loadModelFolder, type ModelFolder } from './model-folder';
import { resolveModel, type DownloadProgress } from './model-source';
import { encoderSessionOptions, type TensorValue } from './ort-worker';
import { l2Normalize, poolRow } from './pooling';
import { resolvePrecision, type Precision, type PrecisionChoice } from './precision';
import { EncoderTokenizer } from './tokenizer';
import { OrtWorkerPool } from './worker-pool';

export type { Device } from './cuda-provider';
export type { Precision, PrecisionChoice } from './precision';

export interface LoadEncoderOptions {
  /** Model folder, `.onnx` file, or hub id such as `sentence-transformers/all-MiniLM-L6-v2`. */
  model: string;
  device?: Device;
  /** Graph precision (default 'auto': fp16 on CUDA, else fp32). */
  precision?: PrecisionChoice;
  /** Texts per ORT run (default 16). */
  batchSize?: number;
  /** CPU threads for ORT in all (default: available CPUs, at most 8). */
  threads?: number;
  /** CPU sessions side by side, sharing `threads` (default: 2, or 1 with a single thread); see OrtWorkerPool. */
  workers?: number;
  /** Where hub ids are cached (default `$REPLUG_CODE_CACHE/models`, else `~/.cache/replug-code/models`). */
  cacheDir?: string;
  onDownloadProgress?: (p: DownloadProgress) => void;
}

/** os.availableParallelism() counts logical CPUs; past ~8 threads a sentence-sized workload gains little. */
const MAX_DEFAULT_THREADS = 8;
/** CPU sessions side by side (see OrtWorkerPool); the threads are shared out between them. */
const DEFAULT_CPU_WORKERS = 2;
export const DEFAULT_BATCH_SIZE = 16;
/** Batches in flight per worker: one running, one ready to start, without materialising every batch's tensors. */
const QUEUED_BATCHES_PER_WORKER = 2;

/**
 * Loads a sentence encoder (downloading a hub id if needed) and starts its ONNX Runtime session. A query-adapter
 * folder (LSR on a plain .onnx encoder) loads its base encoder and applies the adapter to every embedding.
 */
export async function loadEncoder(opts: LoadEncoderOptions): Promise<RuntimeEncoder> {
  if (isAdapterFolder(opts.model)) {
    const { base } = await readAdapterConfig(opts.model);
    return AdaptedEncoder.load(opts.model, await loadOrtEncoder({ ...opts, model: base }));
  }
  return loadOrtEncoder(opts);
}

async function loadOrtEncoder(opts: LoadEncoderOptions): Promise<OrtEncoder> {
  const location = await resolveModel(opts.model, { cacheDir: opts.cacheDir, onProgress: opts.onDownloadProgress });
  const folder = await loadModelFolder(location);
  if (folder.kind === 'onnx' && opts.precision && opts.precision !== 'auto' && opts.precision !== 'fp32') {
    throw new Error(`--precision ${opts.precision} needs a BERT safetensors folder; ${folder.onnxPath} is a plain ONNX model, which runs as exported (use --precision fp32 or auto)`);
  }
  const tokenizer = new EncoderTokenizer(folder.tokenizer, folder.maxTokens);
  const device = opts.device ?? 'auto';
  const threads = opts.threads ?? Math.min(os.availableParallelism(), MAX_DEFAULT_THREADS);
  const failures: string[] = [];
  const providers = providersFor(device);
  // Each provider gets the graph that suits it, so they are tried one by one, each with its own workers.
  for (const provider of providers) {
    if (provider === 'cuda' && !gpuFacts().cudaProvider) {
      failures.push('cuda: the CUDA provider library is not installed'); // no need to load anything to know
      continue;
    }
    const noWebgpu = provider === 'webgpu' ? webgpuMissing() : undefined;
    if (noWebgpu) {
      failures.push(`webgpu: ${noWebgpu}`);
      continue;
    }
    const precision = folder.kind === 'bert' ? resolvePrecision(opts.precision, provider) : 'fp32';
    const workers = provider === 'cpu' ? Math.min(threads, opts.workers ?? DEFAULT_CPU_WORKERS) : 1;
    let pool: OrtWorkerPool;
    try {
      pool = await OrtWorkerPool.start(
        {
          ortPath: require.resolve('onnxruntime-node'),
          model: await encoderGraph(folder, precision),
          providers: [provider],
          options: encoderSessionOptions(Math.max(1, Math.floor(threads / workers))),
        },
        workers,
      );
    } catch (err) {
      failures.push((err as Error).message); // the worker prefixes it with the provider's name
      continue;
    }
    // Only this summary outlives loading: the weights now live in the workers' sessions.
    const info: ModelInfo = {
      fingerprint: folder.fingerprint,
      tokenizerFingerprint: folder.tokenizerFingerprint,
      pooling: folder.pooling,
      generatedGraph: folder.kind === 'bert',
      dim: folder.kind === 'bert' ? folder.config.hiddenSize : undefined,
      provider,
      precision,
      fallbackReason: cudaFallbackReason(provider, failures),
    };
    const encoder = new OrtEncoder(pool, info, tokenizer, opts.batchSize ?? DEFAULT_BATCH_SIZE);
    // One tiny run checks the graph end to end and learns the width of a plain .onnx model's output; a GPU
    // provider that creates the session but cannot run it gives way to the next.
    try {
      await encoder.embed(['probe']);
      return encoder;
    } catch (err) {
      await encoder.dispose();
      if (provider === providers.at(-1)) throw new Error(`${location}: the model does not run as a sentence encoder: ${(err as Error).message}`);
      failures.push(`${provider}: ${(err as Error).message}`);
    }
  }
  throw providerError(device, location, failures);
}

async function encoderGraph(folder: ModelFolder, precision: Precision): Promise<Uint8Array> {
  if (folder.kind === 'onnx') return new Uint8Array(await readFile(folder.onnxPath));
  return buildBertEncoder(folder.config, folder.weights, { pooling: folder.pooling, precision });
}

interface ModelInfo {
  fingerprint: string;
  tokenizerFingerprint: string;
  pooling: Pooling;
  /** Our BERT graph pools and normalises inside ONNX; a plain .onnx may return per-token or unnormalised output. */
  generatedGraph: boolean;
  /** Known up front for generated graphs; learnt from the first run otherwise. */
  dim: number | undefined;
  provider: Provider;
  precision: Precision;
  fallbackReason: string | undefined;
}

export class OrtEncoder implements RuntimeEncoder {
  private width: number | undefined;

  constructor(
    private readonly workers: OrtWorkerPool,
    private readonly info: ModelInfo,
    private readonly tokenizer: EncoderTokenizer,
    private readonly batchSize: number,
  ) {
    this.width = info.dim;
  }

  get provider(): Provider {
    return this.info.provider;
  }

  get precision(): Precision {
    return this.info.precision;
  }

  /** One line on why 'auto' did not end on CUDA, when a user could act on it (see cudaFallbackReason). */
  get fallbackReason(): string | undefined {
    return this.info.fallbackReason;
  }

  get dim(): number {
    if (this.width === undefined) throw new Error('encoder dimension is known after the first embed()');
    return this.width;
  }

  get fingerprint(): string {
    return this.info.fingerprint;
  }

  get tokenizerFingerprint(): string {
    return this.info.tokenizerFingerprint;
  }

  get maxTokens(): number {
    return this.tokenizer.maxTokens;
  }

  countTokens(text: string): number {
    return this.tokenizer.countTokens(text);
  }

  /**
   * Sorts texts by token length so each batch pads little, runs the batches on the workers (the main thread stays
   * free meanwhile), and returns embeddings in the caller's order.
   */
  async embed(texts: string[]): Promise<Float32Array[]> {
    const ids = texts.map((t) => this.tokenizer.encode(t));
    const order = ids.map((_, i) => i).sort((a, b) => ids[a].length - ids[b].length);
    const result = new Array<Float32Array>(texts.length);
    const runs: Promise<void>[] = [];
    for (let start = 0; start < order.length; start += this.batchSize) {
      // Each worker answers in order; a short queue keeps them busy without materialising every batch's tensors.
      const queued = QUEUED_BATCHES_PER_WORKER * this.workers.size;
      if (runs.length >= queued) await runs[runs.length - queued];
      const members = order.slice(start, start + this.batchSize);
      const run = this.runBatch(members.map((i) => ids[i])).then((vectors) => {
        members.forEach((i, k) => (result[i] = vectors[k]));
      });
      run.catch(() => undefined); // reported by Promise.all below, not as an unhandled rejection
      runs.push(run);
    }
    await Promise.all(runs);
    return result;
  }

  async dispose(): Promise<void> {
    await this.workers.close();
  }

  /** Pads a batch to its longest member and runs it; pools here when the model returns per-token states. */
  private async runBatch(batch: number[][]): Promise<Float32Array[]> {
    const seq = Math.max(...batch.map((b) => b.length));
    const inputIds = new BigInt64Array(batch.length * seq);
    const mask = new BigInt64Array(batch.length * seq);
    batch.forEach((row, r) => {
      row.forEach((id, c) => {
        inputIds[r * seq + c] = BigInt(id);
        mask[r * seq + c] = 1n;
      });
    });
    const dims2 = [batch.length, seq];
    const feeds: Record<string, TensorValue> = { input_ids: { data: inputIds, dims: dims2 }, attention_mask: { data: mask, dims: dims2 } };
    if (this.workers.inputNames.includes('token_type_ids')) feeds.token_type_ids = { data: new BigInt64Array(batch.length * seq), dims: dims2 };
    const { outputNames } = this.workers;
    // Sentence-transformers exports have both; the pooled one saves work, per-token states are pooled below.
    const output = ['sentence_embedding', 'last_hidden_state'].find((n) => outputNames.includes(n)) ?? outputNames[0];
    const { data: values, dims } = (await this.workers.run(feeds, [output]))[output];
    const data = values as Float32Array;
    const dim = dims[dims.length - 1];
    this.width ??= dim;
    if (dims.length === 3) return batch.map((row, r) => poolRow(data, r, row.length, seq, dim, this.info.pooling));
    if (dims.length !== 2) throw new Error(`model output has shape [${dims}]; expected [batch, dim] or [batch, seq, dim]`);
    const rows = batch.map((_, r) => data.slice(r * dim, (r + 1) * dim));
    // The generated BERT graph normalises inside ONNX; a plain export's sentence embedding may not be.
    return this.info.generatedGraph ? rows : rows.map(l2Normalize);
  }
}
