import os from 'node:os';
import path from 'node:path';
import { OrtWorker } from '../../encoder/ort-worker';
import { BatchQueue } from '../batch-queue';
import type { LanguageModel, TokenScores } from '../language-model';
import { loadCheckpoint, type Llama2cConfig } from './checkpoint';
import { buildLlama2cGraph } from './graph';
import { EOS, Llama2cTokenizer } from './tokenizer';

export interface Llama2cLoadOptions {
  /** Model name clients must send; default the checkpoint's file name without `.bin`. */
  name?: string;
  /** ONNX Runtime intra-op threads; default 1 (the server's own thread needs the other cores). */
  threads?: number;
  /** Most padded tokens per batched forward pass; default 4096. */
  batchTokens?: number;
}

type Kind = 'dense' | 'sparse';
type RowResult = Float32Array[] | TokenScores;

/** Two runs queued at the worker keep it busy while this thread answers the previous one; more would only wait there. */
const RUNS_IN_FLIGHT = 2;
const DEFAULT_BATCH_TOKENS = 4096;

/**
 * A llama2.c checkpoint plus its tokenizer, served through the LanguageModel interface. The forward pass is an ONNX
 * graph built from the checkpoint (./graph.ts) run by onnxruntime-node on a worker thread, so the HTTP server's
 * event loop stays free; sequences from all requests in flight are batched into shared runs (../batch-queue.ts).
 */
export class Llama2cModel implements LanguageModel {
  readonly maxContext: number;
  readonly eos = EOS;
  private readonly queue: BatchQueue<Kind, RowResult>;

  private constructor(
    readonly name: string,
    readonly config: Llama2cConfig,
    readonly tokenizer: Llama2cTokenizer,
    private readonly worker: OrtWorker,
    batchTokens: number,
  ) {
    this.maxContext = config.seqLen;
    this.queue = new BatchQueue((kind, rows) => this.run(kind, rows), { tokens: batchTokens, inFlight: RUNS_IN_FLIGHT });
  }

  /** Loads `modelFile` (.bin checkpoint) and `tokenizerFile` (tokenizer.bin layout) and starts the ONNX session. */
  static async load(modelFile: string, tokenizerFile: string, options: Llama2cLoadOptions = {}): Promise<Llama2cModel> {
    const { config, weights } = loadCheckpoint(modelFile);
    const tokenizer = new Llama2cTokenizer(tokenizerFile, config.vocabSize);
    const threads = options.threads ?? 1;
    const worker = await OrtWorker.start({
      ortPath: require.resolve('onnxruntime-node'),
      model: buildLlama2cGraph(config, weights),
      // A 260K-parameter model gains nothing from a GPU; the CPU is always there.
      providers: ['cpu'],
      options: { intraOpNumThreads: Math.min(threads, os.availableParallelism()), graphOptimizationLevel: 'all' },
    });
    return new Llama2cModel(options.name ?? path.basename(modelFile, '.bin'), config, tokenizer, worker, options.batchTokens ?? DEFAULT_BATCH_TOKENS);
  }

  tokenize(text: string, addSpecialTokens: boolean): number[] {
    return this.tokenizer.encode(text, addSpecialTokens);
  }

  decode(ids: number[]): { text: string; offsets: number[] } {
    return this.tokenizer.decode(ids);
  }

  async logProbs(ids: number[]): Promise<Float32Array[]> {
    this.check(ids);
    return ids.length === 0 ? [] : ((await this.queue.submit('dense', ids)) as Float32Array[]);
  }

  async scoreTokens(ids: number[]): Promise<TokenScores> {
    this.check(ids);
    if (ids.length === 0) return { next: new Float32Array(0), best: new Int32Array(0), bestLogProb: new Float32Array(0) };
    return (await this.queue.submit('sparse', ids)) as TokenScores;
  }

  async close(): Promise<void> {
    await this.worker.close();
  }

  /** Rejects what the graph would fail on for the whole batch, so one bad prompt fails only its own request. */
  private check(ids: number[]): void {
    const { vocabSize, seqLen } = this.config;
    if (ids.length > seqLen) throw new Error(`sequence of ${ids.length} tokens exceeds the model's context of ${seqLen}`);
    for (const token of ids) {
      if (!Number.isInteger(token) || token < 0 || token >= vocabSize) throw new Error(`token id ${token} is outside the vocabulary (0..${vocabSize - 1})`);
    }
  }

  /** One forward pass over right-padded rows; results are views into the run's output buffers. */
  private async run(kind: Kind, rows: number[][]): Promise<RowResult[]> {
    const width = Math.max(...rows.map((r) => r.length));
    const tokens = new BigInt64Array(rows.length * width);
    rows.forEach((row, r) => row.forEach((id, t) => (tokens[r * width + t] = BigInt(id))));
    const feeds = { tokens: { data: tokens, dims: [rows.length, width] } };
    if (kind === 'dense') {
      const { log_probs: logProbs } = await this.worker.run(feeds, ['log_probs']);
      const data = logProbs.data as Float32Array;
      const vocab = this.config.vocabSize;
      return rows.map((row, r) => row.map((_, t) => data.subarray((r * width + t) * vocab, (r * width + t + 1) * vocab)));
    }
    const out = await this.worker.run(feeds, ['next_log_prob', 'best', 'best_log_prob']);
    const next = out.next_log_prob.data as Float32Array;
    const best = out.best.data as Int32Array;
    const bestLogProb = out.best_log_prob.data as Float32Array;
    return rows.map((row, r) => {
      const at = r * width;
      const rowNext = next.slice(at, at + row.length);
      rowNext[row.length - 1] = NaN; // nothing follows the last token
      return { next: rowNext, best: best.subarray(at, at + row.length), bestLogProb: bestLogProb.subarray(at, at + row.length) };
    });
  }
}
