import { readFile } from 'node:fs/promises';
import os from 'node:os';
import { cudaFallbackReason, providerError, providersFor, type Device } from './cuda-provider';
import type { RuntimeEncoder } from './encoder';
export type { RuntimeEncoder } from './encoder';
import { AdaptedEncoder, isAdapterFolder, readAdapterConfig } from './query-adapter';
import { buildBertEncoder } from './graph/bert-graph';
import type { Pooling } from './bert-config';
import { loadModelFolder } from './model-folder';
import { resolveModel, type DownloadProgress } from './model-source';
import { encoderSessionOptions, OrtWorker, type Provider, type TensorValue } from './ort-worker';
import { l2Normalize, poolRow } from './pooling';
import { EncoderTokenizer } from './tokenizer';

export type { Device } from './cuda-provider';

export interface LoadEncoderOptions {
  /** Model folder, `.onnx` file, or hub id such as `sentence-transformers/all-MiniLM-L6-v2`. */
  model: string;
  device?: Device;
  /** Texts per ORT run (default 16). */
  batchSize?: number;
  /** CPU threads for ORT (default: available CPUs, at most 8). */
  threads?: number;
  /** Where hub ids are cached (default `$REPLUG_CODE_CACHE/models`, else `~/.cache/replug-code/models`). */
  cacheDir?: string;
  onDownloadProgress?: (p: DownloadProgress) => void;
}

/** os.availableParallelism() counts logical CPUs; past ~8 threads a sentence-sized workload gains little. */
const MAX_DEFAULT_THREADS = 8;
const DEFAULT_BATCH_SIZE = 16;
const MAX_QUEUED_BATCHES = 2;

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
  const tokenizer = new EncoderTokenizer(folder.tokenizer, folder.maxTokens);
  const model =
    folder.kind === 'bert'
      ? buildBertEncoder(folder.config, folder.weights, { pooling: folder.pooling })
      : new Uint8Array(await readFile(folder.onnxPath));
  const device = opts.device ?? 'auto';
  const worker = await OrtWorker.start({
    ortPath: require.resolve('onnxruntime-node'),
    model,
    providers: providersFor(device),
    options: encoderSessionOptions(opts.threads ?? Math.min(os.availableParallelism(), MAX_DEFAULT_THREADS)),
  }).catch((err: Error) => {
    throw providerError(device, location, [err.message]);
  });
  // Only this summary outlives loading: the weights now live in the worker's session.
  const info: ModelInfo = {
    fingerprint: folder.fingerprint,
    tokenizerFingerprint: folder.tokenizerFingerprint,
    pooling: folder.pooling,
    generatedGraph: folder.kind === 'bert',
    dim: folder.kind === 'bert' ? folder.config.hiddenSize : undefined,
  };
  const encoder = new OrtEncoder(worker, info, tokenizer, opts.batchSize ?? DEFAULT_BATCH_SIZE);
  // One tiny run checks the graph end to end and learns the width of a plain .onnx model's output.
  try {
    await encoder.embed(['probe']);
  } catch (err) {
    await encoder.dispose();
    throw new Error(`${location}: the model does not run as a sentence encoder: ${(err as Error).message}`);
  }
  return encoder;
}

interface ModelInfo {
  fingerprint: string;
  tokenizerFingerprint: string;
  pooling: Pooling;
  /** Our BERT graph pools and normalises inside ONNX; a plain .onnx may return per-token or unnormalised output. */
  generatedGraph: boolean;
  /** Known up front for generated graphs; learnt from the first run otherwise. */
  dim: number | undefined;
}

export class OrtEncoder implements RuntimeEncoder {
  readonly provider: Provider;
  /** Why CUDA was not used with device 'auto'; undefined when CUDA was not tried or works. */
  readonly fallbackReason: string | undefined;
  private width: number | undefined;

  constructor(
    private readonly worker: OrtWorker,
    private readonly info: ModelInfo,
    private readonly tokenizer: EncoderTokenizer,
    private readonly batchSize: number,
  ) {
    this.provider = worker.provider;
    this.fallbackReason = cudaFallbackReason(worker.provider, worker.failures);
    this.width = info.dim;
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
   * Sorts texts by token length so each batch pads little, runs the batches on the worker (the main thread stays
   * free meanwhile), and returns embeddings in the caller's order.
   */
  async embed(texts: string[]): Promise<Float32Array[]> {
    const ids = texts.map((t) => this.tokenizer.encode(t));
    const order = ids.map((_, i) => i).sort((a, b) => ids[a].length - ids[b].length);
    const result = new Array<Float32Array>(texts.length);
    const runs: Promise<void>[] = [];
    for (let start = 0; start < order.length; start += this.batchSize) {
      // The worker answers in order; a short queue keeps it busy without materialising every batch's tensors.
      if (runs.length >= MAX_QUEUED_BATCHES) await runs[runs.length - MAX_QUEUED_BATCHES];
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
    await this.worker.close();
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
    if (this.worker.inputNames.includes('token_type_ids')) feeds.token_type_ids = { data: new BigInt64Array(batch.length * seq), dims: dims2 };
    const { outputNames } = this.worker;
    // Sentence-transformers exports have both; the pooled one saves work, per-token states are pooled below.
    const output = ['sentence_embedding', 'last_hidden_state'].find((n) => outputNames.includes(n)) ?? outputNames[0];
    const { data: values, dims } = (await this.worker.run(feeds, [output]))[output];
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
