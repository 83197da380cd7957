import os from 'node:os';
import path from 'node:path';
import { OrtWorker, type TensorValue } from '../../encoder/ort-worker';
import { BatchQueue } from '../batch-queue';
import type { LanguageModel, TokenScores } from '../language-model';
import { loadCheckpoint, type Llama2cConfig } from './checkpoint';
import { buildLlama2cGraph } from './graph';
import { PrefixCache, type KvEntry } from './prefix-cache';
import { EOS, Llama2cTokenizer } from './tokenizer';

export interface Llama2cLoadOptions {
  /** Model name clients must send; default the checkpoint's file name without `.bin`. */
  name?: string;
  /** ONNX Runtime intra-op threads; default 1 (the server's own thread needs the other cores). */
  threads?: number;
  /** Most padded tokens per batched forward pass; default 4096. */
  batchTokens?: number;
  /** Memory for keys and values of recent sequences (generation reuses them); default 64 MiB. */
  prefixCacheBytes?: number;
}

/**
 * dense: every position's distribution; sparse: per position the next token's log-prob and the best token;
 * prefill and extend: the distribution after the whole sequence, its keys and values cached for its extensions;
 * extend starts from a cached prefix. (The two never share a run: a one-token extension padded to a prefill's
 * length would redo the work the cache saved.)
 */
type Kind = 'dense' | 'sparse' | 'prefill' | 'extend';
/** A row of a run: its tokens, and for `extend` the cached prefix whose keys and values it starts from. */
interface Row {
  ids: number[];
  cached?: KvEntry;
}
type RowResult = Float32Array[] | TokenScores | Float32Array;

/** Two runs queued at the worker keep it busy while this thread answers the previous one; more would only wait there. */
const RUNS_IN_FLIGHT = 2;
const DEFAULT_BATCH_TOKENS = 4096;
const DEFAULT_PREFIX_CACHE_BYTES = 64 * 1024 * 1024;

/**
 * A llama2.c checkpoint plus its tokenizer, served through the LanguageModel interface. The forward pass is an ONNX
 * graph built from the checkpoint (./graph.ts) run by onnxruntime-node on a worker thread, so the HTTP server's
 * event loop stays free; sequences from all requests in flight are batched into shared runs (../batch-queue.ts).
 */
export class Llama2cModel implements LanguageModel {
  readonly maxContext: number;
  readonly eos = EOS;
  /** Token positions that went through the graph (padding excluded): what the prefix cache saves shows here. */
  positionsRun = 0;
  private readonly queue: BatchQueue<Kind, Row, RowResult>;
  private readonly prefixes: PrefixCache;
  private readonly headSize: number;

  private constructor(
    readonly name: string,
    readonly config: Llama2cConfig,
    readonly tokenizer: Llama2cTokenizer,
    private readonly worker: OrtWorker,
    options: Llama2cLoadOptions,
  ) {
    this.maxContext = config.seqLen;
    this.headSize = config.dim / config.nHeads;
    this.queue = new BatchQueue((kind, rows) => this.run(kind, rows), { tokens: options.batchTokens ?? DEFAULT_BATCH_TOKENS, inFlight: RUNS_IN_FLIGHT });
    this.prefixes = new PrefixCache(options.prefixCacheBytes ?? DEFAULT_PREFIX_CACHE_BYTES);
  }

  /** Loads `modelFile` (.bin checkpoint) and `tokenizerFile` (tokenizer.bin layout) and starts the ONNX session. */
  static async load(modelFile: string, tokenizerFile: string, options: Llama2cLoadOptions = {}): Promise<Llama2cModel> {
    const { config, weights } = loadCheckpoint(modelFile);
    const tokenizer = new Llama2cTokenizer(tokenizerFile, config.vocabSize);
    const worker = await OrtWorker.start({
      ortPath: require.resolve('onnxruntime-node'),
      model: buildLlama2cGraph(config, weights),
      // A 260K-parameter model gains nothing from a GPU; the CPU is always there.
      providers: ['cpu'],
      options: { intraOpNumThreads: Math.min(options.threads ?? 1, os.availableParallelism()), graphOptimizationLevel: 'all' },
    });
    return new Llama2cModel(options.name ?? path.basename(modelFile, '.bin'), config, tokenizer, worker, options);
  }

  tokenize(text: string, addSpecialTokens: boolean): number[] {
    return this.tokenizer.encode(text, addSpecialTokens);
  }

  decode(ids: number[]): { text: string; offsets: number[] } {
    return this.tokenizer.decode(ids);
  }

  async logProbs(ids: number[]): Promise<Float32Array[]> {
    this.check(ids);
    return ids.length === 0 ? [] : ((await this.queue.submit('dense', { ids }, ids.length)) as Float32Array[]);
  }

  async scoreTokens(ids: number[]): Promise<TokenScores> {
    this.check(ids);
    if (ids.length === 0) return { next: new Float32Array(0), best: new Int32Array(0), bestLogProb: new Float32Array(0) };
    return (await this.queue.submit('sparse', { ids }, ids.length)) as TokenScores;
  }

  /** The distribution after `ids`, computing only what the longest cached prefix lacks. */
  async nextLogProbs(ids: number[]): Promise<Float32Array> {
    this.check(ids);
    if (ids.length === 0) throw new Error('the distribution after an empty sequence is undefined; start with BOS');
    const cached = this.prefixes.longest(ids);
    if (cached?.ids.length === ids.length) return cached.next;
    return (await this.queue.submit(cached ? 'extend' : 'prefill', { ids, cached }, ids.length)) as Float32Array;
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

  private async run(kind: Kind, rows: Row[]): Promise<RowResult[]> {
    if (kind === 'dense') {
      const { out, width } = await this.forward(rows, ['log_probs']);
      const data = out.log_probs.data as Float32Array;
      const vocab = this.config.vocabSize;
      return rows.map(({ ids }, r) => ids.map((_, t) => data.subarray((r * width + t) * vocab, (r * width + t + 1) * vocab)));
    }
    if (kind === 'sparse') {
      const { out, width } = await this.forward(rows, ['next_log_prob', 'best', 'best_log_prob']);
      const next = out.next_log_prob.data as Float32Array;
      const best = out.best.data as Int32Array;
      const bestLogProb = out.best_log_prob.data as Float32Array;
      return rows.map(({ ids }, r) => {
        const at = r * width;
        const rowNext = next.slice(at, at + ids.length);
        rowNext[ids.length - 1] = NaN; // nothing follows the last token
        return { next: rowNext, best: best.subarray(at, at + ids.length), bestLogProb: bestLogProb.subarray(at, at + ids.length) };
      });
    }
    return this.extend(rows);
  }

  /** Only the tokens past each row's cached prefix go through the graph; the result is cached in turn. */
  private async extend(rows: Row[]): Promise<Float32Array[]> {
    const { nLayers, nKvHeads, vocabSize } = this.config;
    const layerOutputs = Array.from({ length: nLayers }, (_, l) => [`key_${l}`, `value_${l}`]).flat();
    const { out, width } = await this.forward(rows, ['log_probs', ...layerOutputs]);
    const logProbs = out.log_probs.data as Float32Array;
    const head = this.headSize;
    return rows.map(({ ids, cached }, r) => {
      const start = cached?.ids.length ?? 0;
      const fresh = ids.length - start;
      const last = (r * width + fresh - 1) * vocabSize;
      const next = logProbs.slice(last, last + vocabSize);
      // Each layer's keys/values for the whole sequence: the cached prefix's, then this row's new positions.
      const joined = (prefix: Float32Array | undefined, computed: TensorValue) => {
        const all = new Float32Array(nKvHeads * ids.length * head);
        const data = computed.data as Float32Array;
        for (let h = 0; h < nKvHeads; h++) {
          if (prefix) all.set(prefix.subarray(h * start * head, (h + 1) * start * head), h * ids.length * head);
          const from = ((r * nKvHeads + h) * width) * head;
          all.set(data.subarray(from, from + fresh * head), (h * ids.length + start) * head);
        }
        return all;
      };
      const keys = Array.from({ length: nLayers }, (_, l) => joined(cached?.keys[l], out[`key_${l}`]));
      const values = Array.from({ length: nLayers }, (_, l) => joined(cached?.values[l], out[`value_${l}`]));
      this.prefixes.add({ ids: [...ids], keys, values, next }); // a copy: callers extend their arrays in place
      return next;
    });
  }

  /**
   * One forward pass: row r's tokens past its cached prefix, right-padded to the longest, attending to that prefix's
   * keys and values (padded to the longest prefix; the graph masks the empty slots).
   */
  private async forward(rows: Row[], fetches: string[]): Promise<{ out: Record<string, TensorValue>; width: number }> {
    const { nLayers, nKvHeads } = this.config;
    const head = this.headSize;
    const starts = rows.map((row) => row.cached?.ids.length ?? 0);
    const width = Math.max(...rows.map((row, r) => row.ids.length - starts[r]));
    const pastWidth = Math.max(...starts);
    const batch = rows.length;
    this.positionsRun += rows.reduce((sum, row, r) => sum + row.ids.length - starts[r], 0);
    const tokens = new Int32Array(batch * width);
    rows.forEach(({ ids }, r) => tokens.set(ids.slice(starts[r]), r * width));
    const feeds: Record<string, TensorValue> = {
      tokens: { data: tokens, dims: [batch, width] },
      past_length: { data: Int32Array.from(starts), dims: [batch] },
    };
    const pastDims = [batch, nKvHeads, pastWidth, head];
    for (let l = 0; l < nLayers; l++) {
      for (const [name, pick] of [[`past_key_${l}`, (e: KvEntry) => e.keys[l]], [`past_value_${l}`, (e: KvEntry) => e.values[l]]] as const) {
        const past = new Float32Array(batch * nKvHeads * pastWidth * head);
        rows.forEach(({ cached }, r) => {
          if (!cached) return;
          const source = pick(cached);
          const length = starts[r] * head;
          for (let h = 0; h < nKvHeads; h++) past.set(source.subarray(h * length, (h + 1) * length), ((r * nKvHeads + h) * pastWidth) * head);
        });
        feeds[name] = { data: past, dims: pastDims };
      }
    }
    return { out: await this.worker.run(feeds, fetches), width };
  }
}
