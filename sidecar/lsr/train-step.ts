import * as ort from 'onnxruntime-node';
import { existsSync } from 'node:fs';
import { cp, mkdir, open, readFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { BertConfig, Pooling } from '../encoder/bert-config';
import { buildBertEncoder } from '../encoder/graph/bert-graph';
import { loadModelFolder, type BertFolder } from '../encoder/model-folder';
import { resolveModel } from '../encoder/model-source';
import type { Device } from '../encoder/ort-encoder';
import type { Provider } from '../encoder/cuda-provider';
import { encodeSafetensors, type Float32Tensor } from '../encoder/safetensors';
import { EncoderTokenizer } from '../encoder/tokenizer';
import { writeFileAtomic } from '../index/atomic-file';
import { ABSTAIN_FILE, ABSTAIN_SCORE, initialAbstention, isAbstentionWeight, readAbstention, writeAbstention } from '../retrieve/abstention';
import { GraphTrainer, type Gradients, type StepResult } from './graph-trainer';
import { packTokens, type LsrTargets } from './lsr-batch';
import type { AdamWOptions } from './optimizer';
import { openSession } from './ort-session';
import { ADAPTER_PREFIX, buildAdapterTrainGraph, identityAdapter } from './train-graph/adapter-train-graph';
import { buildBertTrainGraph } from './train-graph/bert-train-graph';
import { withConstantWeights } from './train-graph/constant-weights';
import { splitTrainGraph } from './train-graph/split-train-graph';
import { QUERY_EMB } from './train-graph/train-outputs';

export type { Gradients, StepResult } from './graph-trainer';
export type { LsrTargets } from './lsr-batch';

/** REPLUG's retrieval temperature default: P_R = softmax(cos/γ). */
export const DEFAULT_GAMMA = 0.1;
/** Optimizer moments saved next to the weights; the inference loader ignores the file. */
export const OPTIMIZER_FILE = 'optimizer.safetensors';
export const ADAPTER_FILE = 'adapter.safetensors';
const MAX_DEFAULT_THREADS = 8;

interface CommonOptions {
  device?: Device;
  /** CPU threads for ORT and for the optimizer's update (default: available CPUs, at most 8). */
  threads?: number;
  /** Threads of the optimizer's update (default: `threads`). */
  optimizerThreads?: number;
  /** Retrieval temperature γ (default 0.1); a batch may override it. */
  gamma?: number;
  optimizer: AdamWOptions;
  /**
   * Put an empty passage after each query's k candidates, with a learned score trained at peak rate `lr` (see
   * abstention.ts). The score starts from the source folder's abstain.safetensors when it has one.
   */
  abstain?: { lr: number };
}

export interface TrainStepOptions extends CommonOptions {
  /** BERT model folder (config.json + model.safetensors) or hub id, as loadEncoder takes. */
  model: string;
  cacheDir?: string;
  /** Default true. */
  freezeWordEmbeddings?: boolean;
  /** Freeze the embeddings and layers 0..n−1 (default 0). */
  freezeLayers?: number;
  /** Continue from the folder's optimizer.safetensors when it has one (default false). */
  resumeOptimizer?: boolean;
  /** How a step runs (see StepPlan); default 'split' on the CPU, 'fused' on CUDA. */
  plan?: StepPlan;
}

/**
 * 'split': the step's forward half runs first and gives the queries' embeddings for retrieval; the backward half
 * reuses its matmul outputs (one forward pass less per step; the saved values go to JS and back, ≈ 42 MB at
 * MiniLM shape, 4 × 128 tokens). 'fused': the queries are embedded by the inference graph, then one graph runs
 * forward and backward; with onnxruntime-node every graph input and output crosses between host and device, so on
 * CUDA this moves fewer bytes per step, while the forward pass it repeats is cheap there.
 */
export type StepPlan = 'split' | 'fused';

/** What finishes a step begun with `begin`: per query of `rows`, its candidates and teacher distribution. */
export interface StepTargets extends LsrTargets {
  gamma?: number;
  /** Which of the begun queries these targets are for, in order (default: all of them). */
  rows?: number[];
}

/** A step whose forward pass has run: the queries' embeddings at the current weights, and how to finish it. */
export interface PendingStep {
  queryEmb: Float32Array[];
  /** Loss, backward and the AdamW update for the given targets. */
  finish(targets: StepTargets): Promise<StepResult>;
}

export interface LsrBatch extends LsrTargets {
  /** Tokenised queries with special tokens (see `tokenize`), any lengths up to the model's positions. */
  inputIds: number[][];
  gamma?: number;
}

/**
 * One LSR training step on a BERT encoder: runs the training graph (forward, loss, hand-written backward) on ORT,
 * then AdamW in place on the weights. Also embeds queries with the current weights and saves a model folder that
 * the inference encoder loads like any other.
 */
export class TrainStep {
  private embedSession: ort.InferenceSession | undefined;

  private constructor(
    private readonly folder: BertFolder,
    private readonly trainer: GraphTrainer,
    /** The split plan's forward half; undefined with the fused plan. */
    private readonly forwardSession: ort.InferenceSession | undefined,
    readonly provider: Provider,
    readonly fallbackReason: string | undefined,
    private readonly opts: TrainStepOptions,
    /** 'bert.' when the source checkpoint stored its weights under that prefix. */
    private readonly namePrefix: string,
    readonly tokenizer: EncoderTokenizer,
    /** Weights that never change: constants of the graphs rather than inputs. */
    private readonly frozen: ReadonlySet<string>,
  ) {}

  static async create(opts: TrainStepOptions): Promise<TrainStep> {
    const location = await resolveModel(opts.model, { cacheDir: opts.cacheDir });
    const folder = await loadModelFolder(location);
    if (folder.kind !== 'bert') {
      throw new Error(`${folder.dir} is a plain ONNX encoder whose weights cannot be trained: train a query adapter (AdapterTrainStep) instead`);
    }
    const weights = await withAbstention(folder.weights, folder.dir, opts.abstain);
    const graph = buildBertTrainGraph(folder.config, weights, {
      pooling: folder.pooling,
      freezeWordEmbeddings: opts.freezeWordEmbeddings,
      freezeLayers: opts.freezeLayers,
      abstain: opts.abstain !== undefined,
    });
    const trainable = new Set(graph.trainable);
    const frozen = new Set([...folder.weights.keys()].filter((name) => !trainable.has(name)));
    const model = withConstantWeights(graph.model, folder.weights, frozen);
    const split = splitTrainGraph(model, graph.weightNames);
    // The forward half is opened first: where it lands decides the default plan.
    const threads = threadsOf(opts);
    const first = await openSession(split.forward, opts.device ?? 'auto', threads);
    const plan = opts.plan ?? (first.provider === 'cuda' ? 'fused' : 'split');
    let forward: ort.InferenceSession | undefined = first.session;
    let loss: ort.InferenceSession;
    try {
      if (plan === 'fused') {
        await first.session.release();
        forward = undefined;
      }
      loss = (await openSession(plan === 'split' ? split.backward : model, first.provider, threads)).session;
    } catch (err) {
      await forward?.release();
      throw err;
    }
    const trainer = new GraphTrainer(
      loss, weights, graph.trainable, folder.config.hiddenSize, optimizerOptions(opts), opts.gamma ?? DEFAULT_GAMMA, opts.optimizerThreads ?? threads,
    );
    const stateFile = path.join(folder.dir, OPTIMIZER_FILE);
    if (opts.resumeOptimizer && existsSync(stateFile)) trainer.optimizer.decodeState(await readFile(stateFile), stateFile);
    const prefix = (await safetensorsNames(path.join(folder.dir, 'model.safetensors'))).some((n) => n.startsWith('bert.')) ? 'bert.' : '';
    const tokenizer = new EncoderTokenizer(folder.tokenizer, folder.maxTokens);
    return new TrainStep(folder, trainer, forward, first.provider, first.fallbackReason, opts, prefix, tokenizer, frozen);
  }

  get plan(): StepPlan {
    return this.forwardSession ? 'split' : 'fused';
  }

  get config(): BertConfig {
    return this.folder.config;
  }

  get pooling(): Pooling {
    return this.folder.pooling;
  }

  /** Weights by canonical name (no `bert.` prefix), and the abstention score when there is one; updated in place by `step`. */
  get weights(): ReadonlyMap<string, Float32Tensor> {
    return this.trainer.weights;
  }

  /** Names of the weights that get gradients and updates. */
  get trainable(): readonly string[] {
    return this.trainer.trainable;
  }

  get optimizerStep(): number {
    return this.trainer.optimizer.step;
  }

  /** Bytes fed to and fetched from ONNX Runtime so far (host↔device copies on a GPU). */
  get transferred(): Readonly<{ in: number; out: number }> {
    return this.trainer.transferred;
  }

  /** Token ids as the inference encoder makes them (special tokens, truncated to the model's max length). */
  tokenize(texts: string[]): number[][] {
    return texts.map((t) => this.tokenizer.encode(t));
  }

  /** Loss, retrieval log-probs, query embeddings and gradients at the current weights; changes nothing. */
  async gradients(batch: LsrBatch): Promise<Gradients> {
    return this.trainer.gradients(await this.lossInputs(batch.inputIds), batch);
  }

  /** One update; the loss, log-probs and query embeddings it reports are those before the update. */
  async step(batch: LsrBatch): Promise<StepResult> {
    return this.trainer.step(await this.lossInputs(batch.inputIds), batch);
  }

  /**
   * Begins a step on these queries: their embeddings at the current weights, to retrieve candidates with.
   * Finishing it with targets for only some of the queries (`rows`) runs their forward pass again.
   */
  async begin(inputIds: number[][]): Promise<PendingStep> {
    const forward = this.forwardSession ? await this.forward(inputIds) : undefined;
    const queryEmb = forward?.queryEmb ?? (await this.embed(inputIds));
    let finished = false;
    return {
      queryEmb,
      finish: async ({ rows, ...targets }) => {
        // What the forward half saved belongs to the weights before this step's update.
        if (finished) throw new Error('a begun step finishes once: begin another step');
        finished = true;
        if (!rows || (rows.length === inputIds.length && rows.every((r, i) => r === i))) {
          return this.trainer.step(forward?.inputs ?? this.tokenFeeds(inputIds), targets);
        }
        return this.step({ ...targets, inputIds: rows.map((r) => inputIds[r]) });
      },
    };
  }

  /** L2-normalised query embeddings at the current weights (the inference graph, fed the live weights). */
  async embed(inputIds: number[][]): Promise<Float32Array[]> {
    if (!this.embedSession) {
      const graph = buildBertEncoder(this.config, this.weights, { pooling: this.pooling, weightsAsInputs: true });
      this.embedSession = (await openSession(withConstantWeights(graph, this.weights, this.frozen), this.provider, threadsOf(this.opts))).session;
    }
    const out = await this.trainer.run(this.embedSession, this.tokenFeeds(inputIds));
    return this.rows(out.sentence_embedding, inputIds.length);
  }

  /**
   * Writes a model folder: the source folder's tokenizer/config/pooling files and model.safetensors with the
   * current weights under the source's names (`bert.` prefix kept), and abstain.safetensors when the step abstains;
   * `optimizer: true` adds the optimizer state. `dir` may be the source folder itself.
   */
  async save(dir: string, { optimizer = false } = {}): Promise<void> {
    await mkdir(dir, { recursive: true });
    if (path.resolve(dir) !== path.resolve(this.folder.dir)) {
      // A model.onnx would shadow nothing (safetensors wins) but would describe stale weights; leave it behind, and
      // an abstention score this step does not train.
      const skip = (src: string) => ['model.safetensors', OPTIMIZER_FILE, ABSTAIN_FILE, 'onnx'].includes(path.basename(src)) || src.endsWith('.onnx');
      await cp(this.folder.dir, dir, { recursive: true, filter: (src) => !skip(src) });
    }
    const encoder = [...this.weights].filter(([name]) => !isAbstentionWeight(name));
    const tensors = new Map(encoder.map(([name, t]) => [this.namePrefix + name, t]));
    await writeFileAtomic(path.join(dir, 'model.safetensors'), encodeSafetensors(tensors, { format: 'pt' }));
    await saveCommon(dir, this.trainer, optimizer);
  }

  async dispose(): Promise<void> {
    await this.trainer.dispose();
    await this.forwardSession?.release();
    await this.embedSession?.release();
  }

  /** The split plan's forward half: query embeddings, and the inputs of the backward half (tokens and saved values). */
  private async forward(inputIds: number[][]): Promise<{ queryEmb: Float32Array[]; inputs: Record<string, ort.Tensor> }> {
    const tokens = this.tokenFeeds(inputIds);
    const { [QUERY_EMB]: queryEmb, ...saved } = await this.trainer.run(this.forwardSession!, tokens);
    return { queryEmb: this.rows(queryEmb, inputIds.length), inputs: { ...tokens, ...saved } };
  }

  /** What the loss graph takes besides the targets: the tokens, and with the split plan what the forward half saved. */
  private async lossInputs(inputIds: number[][]): Promise<Record<string, ort.Tensor>> {
    return this.forwardSession ? (await this.forward(inputIds)).inputs : this.tokenFeeds(inputIds);
  }

  private rows(t: ort.Tensor, batch: number): Float32Array[] {
    const data = t.data as Float32Array;
    const dim = this.config.hiddenSize;
    return Array.from({ length: batch }, (_, b) => data.slice(b * dim, (b + 1) * dim));
  }

  private tokenFeeds(inputIds: number[][]): Record<string, ort.Tensor> {
    const { inputIds: ids, mask, dims } = packTokens(inputIds, this.config.vocabSize, this.config.maxPositions);
    return { input_ids: new ort.Tensor('int64', ids, dims), attention_mask: new ort.Tensor('int64', mask, dims) };
  }
}

export interface AdapterTrainStepOptions extends CommonOptions {
  /** Width of the frozen encoder's embeddings. */
  dim: number;
  /** Start from a saved adapter.safetensors instead of the identity. */
  weights?: Map<string, Float32Tensor>;
  /** Continue from a saved optimizer.safetensors (see `save(dir, { optimizer: true })`). */
  optimizerState?: { bytes: Uint8Array; file: string };
  /** With `abstain`: the folder whose abstain.safetensors the score starts from, when it has one. */
  abstentionFrom?: string;
}

export interface AdapterBatch extends LsrTargets {
  /** The frozen encoder's query embeddings, `dim` floats each. */
  queries: Float32Array[];
  gamma?: number;
}

/** LSR for encoders that cannot be trained: a linear query adapter (init identity) trained on their embeddings. */
export class AdapterTrainStep {
  private constructor(
    private readonly trainer: GraphTrainer,
    readonly provider: Provider,
    private readonly opts: AdapterTrainStepOptions,
  ) {}

  static async create(opts: AdapterTrainStepOptions): Promise<AdapterTrainStep> {
    const weights = await withAbstention(opts.weights ?? identityAdapter(opts.dim), opts.abstentionFrom, opts.abstain);
    const graph = buildAdapterTrainGraph(opts.dim, weights, opts.abstain !== undefined);
    const { session, provider } = await openSession(graph.model, opts.device ?? 'auto', threadsOf(opts));
    const trainer = new GraphTrainer(session, weights, graph.trainable, opts.dim, optimizerOptions(opts), opts.gamma ?? DEFAULT_GAMMA, opts.optimizerThreads ?? threadsOf(opts));
    if (opts.optimizerState) trainer.optimizer.decodeState(opts.optimizerState.bytes, opts.optimizerState.file);
    return new AdapterTrainStep(trainer, provider, opts);
  }

  get optimizerStep(): number {
    return this.trainer.optimizer.step;
  }

  /** `adapter.weight` [dim, dim] and `adapter.bias` [dim]: query' = normalize(W·q + b); and the abstention score when there is one. */
  get weights(): ReadonlyMap<string, Float32Tensor> {
    return this.trainer.weights;
  }

  async gradients(batch: AdapterBatch): Promise<Gradients> {
    return this.trainer.gradients(this.queryFeeds(batch.queries), batch);
  }

  async step(batch: AdapterBatch): Promise<StepResult> {
    return this.trainer.step(this.queryFeeds(batch.queries), batch);
  }

  /** Writes `adapter.safetensors` (and abstain.safetensors) into `dir`; `optimizer: true` adds the optimizer state. */
  async save(dir: string, { optimizer = false } = {}): Promise<void> {
    await mkdir(dir, { recursive: true });
    const adapter = new Map([...this.weights].filter(([name]) => !isAbstentionWeight(name)));
    await writeFileAtomic(path.join(dir, ADAPTER_FILE), encodeSafetensors(adapter, { kind: ADAPTER_PREFIX }));
    await saveCommon(dir, this.trainer, optimizer);
  }

  dispose(): Promise<void> {
    return this.trainer.dispose();
  }

  private queryFeeds(queries: Float32Array[]): Record<string, ort.Tensor> {
    const dim = this.opts.dim;
    const flat = new Float32Array(queries.length * dim);
    queries.forEach((q, b) => {
      if (q.length !== dim) throw new Error(`query embedding ${b} has ${q.length} dimensions; the adapter has ${dim}`);
      flat.set(q, b * dim);
    });
    return { base_emb: new ort.Tensor('float32', flat, [queries.length, dim]) };
  }
}

/** `weights` and, when abstaining, the abstention score saved in `from` (or its initial value). */
async function withAbstention(
  weights: Map<string, Float32Tensor>, from: string | undefined, abstain: CommonOptions['abstain'],
): Promise<Map<string, Float32Tensor>> {
  if (!abstain) return weights;
  const saved = from === undefined ? undefined : await readAbstention(from);
  return new Map([...weights, ...(saved ?? initialAbstention())]);
}

function optimizerOptions({ optimizer, abstain }: CommonOptions): AdamWOptions {
  return abstain ? { ...optimizer, lrByName: { [ABSTAIN_SCORE]: abstain.lr } } : optimizer;
}

/** What both steps save beside their own weights: the abstention score, and the optimizer state when asked. */
async function saveCommon(dir: string, trainer: GraphTrainer, optimizer: boolean): Promise<void> {
  if (trainer.weights.has(ABSTAIN_SCORE)) await writeAbstention(dir, trainer.weights);
  if (optimizer) await writeFileAtomic(path.join(dir, OPTIMIZER_FILE), trainer.optimizer.encodeState());
}

function threadsOf(opts: CommonOptions): number {
  return opts.threads ?? Math.min(os.availableParallelism(), MAX_DEFAULT_THREADS);
}

/** Tensor names from a safetensors header, without reading the (large) data section. */
async function safetensorsNames(file: string): Promise<string[]> {
  const handle = await open(file, 'r');
  try {
    const lengthBytes = Buffer.alloc(8);
    await handle.read(lengthBytes, 0, 8, 0);
    const header = Buffer.alloc(Number(lengthBytes.readBigUInt64LE(0)));
    await handle.read(header, 0, header.length, 8);
    return Object.keys(JSON.parse(header.toString('utf8')) as object);
  } finally {
    await handle.close();
  }
}
