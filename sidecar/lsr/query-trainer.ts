import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import * as path from 'node:path';
import type { Device } from '../encoder/cuda-provider';
import type { RuntimeEncoder } from '../encoder/encoder';
import { loadModelFolder } from '../encoder/model-folder';
import { resolveModel } from '../encoder/model-source';
import { loadEncoder } from '../encoder/ort-encoder';
import { QUERY_TOWER_PRECISION } from '../encoder/precision';
import { ADAPTER_CONFIG, ADAPTER_WEIGHTS, applyAdapter, readAdapterConfig, type AdapterConfig } from '../encoder/query-adapter';
import { parseSafetensors, toFloat32, type Float32Tensor } from '../encoder/safetensors';
import { writeFileAtomic } from '../index/atomic-file';
import { ABSTAIN_SCORE } from '../retrieve/abstention';
import type { AdamWOptions } from './optimizer';
import { AdapterTrainStep, OPTIMIZER_FILE, TrainStep, type PendingStep, type TrainStepOptions } from './train-step';

/** What the LSR loop needs from the part of the retriever that learns. */
export interface QueryTrainer {
  readonly dim: number;
  /** Why training runs on another provider than the device asked for (undefined when it runs where asked). */
  readonly fallbackReason: string | undefined;
  /** Updates taken so far (restored on resume). */
  readonly optimizerStep: number;
  /** The empty passage's score τ, when training with abstention. */
  readonly abstentionScore: number | undefined;
  /** L2-normalised embeddings (shared mode's documents) with the current weights. */
  embed(texts: string[]): Promise<Float32Array[]>;
  /** Begins a step on these queries: their embeddings at the current weights, to retrieve with, and its finish. */
  begin(texts: string[]): Promise<PendingStep>;
  /** Everything a resumed run needs (weights and optimizer state). */
  saveCheckpoint(dir: string): Promise<void>;
  /** A model folder that loadEncoder, search and eval take. */
  saveModel(dir: string): Promise<void>;
  dispose(): Promise<void>;
}

/** How a step runs (see TrainStepOptions); nothing about what it computes. */
export type StepRunner = Pick<TrainStepOptions, 'plan' | 'optimizerThreads'>;

export interface QueryTrainerOptions extends StepRunner {
  /** The encoder to start from, or a checkpoint folder written by `saveCheckpoint`. */
  model: string;
  device?: Device;
  gamma: number;
  freezeWordEmbeddings: boolean;
  freezeLayers: number;
  optimizer: AdamWOptions;
  resume: boolean;
  /** Train an abstention score too (see TrainStepOptions.abstain). */
  abstain?: { lr: number };
}

/**
 * A BERT encoder trains its own weights; a plain model.onnx cannot be trained, so it gets a linear query adapter
 * (initialised to the identity) on top of its frozen embeddings, trained with the same loss.
 */
export async function createQueryTrainer(opts: QueryTrainerOptions): Promise<QueryTrainer> {
  if (existsSync(path.join(opts.model, ADAPTER_CONFIG))) return AdapterQueryTrainer.create(opts, await readAdapterConfig(opts.model));
  const folder = await loadModelFolder(await resolveModel(opts.model));
  // The adapter folder names its base: a local path is stored absolute so the folder works from anywhere.
  if (folder.kind !== 'bert') return AdapterQueryTrainer.create(opts, { base: existsSync(opts.model) ? path.resolve(opts.model) : opts.model });
  return new BertQueryTrainer(
    await TrainStep.create({
      model: opts.model,
      device: opts.device,
      gamma: opts.gamma,
      freezeWordEmbeddings: opts.freezeWordEmbeddings,
      freezeLayers: opts.freezeLayers,
      resumeOptimizer: opts.resume,
      optimizer: opts.optimizer,
      plan: opts.plan,
      optimizerThreads: opts.optimizerThreads,
      abstain: opts.abstain,
    }),
  );
}

class BertQueryTrainer implements QueryTrainer {
  constructor(private readonly trainer: TrainStep) {}

  get dim(): number {
    return this.trainer.config.hiddenSize;
  }

  get fallbackReason(): string | undefined {
    return this.trainer.fallbackReason;
  }

  get optimizerStep(): number {
    return this.trainer.optimizerStep;
  }

  get abstentionScore(): number | undefined {
    return this.trainer.weights.get(ABSTAIN_SCORE)?.data[0];
  }

  embed(texts: string[]): Promise<Float32Array[]> {
    return this.trainer.embed(this.trainer.tokenize(texts));
  }

  begin(texts: string[]): Promise<PendingStep> {
    return this.trainer.begin(this.trainer.tokenize(texts));
  }

  saveCheckpoint(dir: string): Promise<void> {
    return this.trainer.save(dir, { optimizer: true });
  }

  saveModel(dir: string): Promise<void> {
    return this.trainer.save(dir);
  }

  dispose(): Promise<void> {
    return this.trainer.dispose();
  }
}

export class AdapterQueryTrainer implements QueryTrainer {
  private constructor(
    private readonly base: RuntimeEncoder,
    private readonly trainer: AdapterTrainStep,
    private readonly config: AdapterConfig,
  ) {}

  static async create(opts: QueryTrainerOptions, config: AdapterConfig): Promise<AdapterQueryTrainer> {
    // At the precision the trained adapter will run at in search (a query tower's), so it learns on what it will see.
    const base = await loadEncoder({ model: config.base, device: opts.device, precision: QUERY_TOWER_PRECISION });
    // A checkpoint or earlier adapter folder carries its weights (and, on resume, the optimizer state).
    const weightsFile = path.join(opts.model, ADAPTER_WEIGHTS);
    const stateFile = path.join(opts.model, OPTIMIZER_FILE);
    const weights = existsSync(weightsFile) ? await readAdapterWeights(weightsFile) : undefined;
    const trainer = await AdapterTrainStep.create({
      dim: base.dim,
      weights,
      device: opts.device,
      gamma: opts.gamma,
      optimizer: opts.optimizer,
      optimizerThreads: opts.optimizerThreads,
      optimizerState: opts.resume && existsSync(stateFile) ? { bytes: await readFile(stateFile), file: stateFile } : undefined,
      abstain: opts.abstain,
      abstentionFrom: opts.model,
    });
    return new AdapterQueryTrainer(base, trainer, config);
  }

  get dim(): number {
    return this.base.dim;
  }

  /** The frozen base encoder's: the adapter step opens its session on the same device. */
  get fallbackReason(): string | undefined {
    return this.base.fallbackReason;
  }

  get optimizerStep(): number {
    return this.trainer.optimizerStep;
  }

  get abstentionScore(): number | undefined {
    return this.trainer.weights.get(ABSTAIN_SCORE)?.data[0];
  }

  async embed(texts: string[]): Promise<Float32Array[]> {
    return this.adapt(await this.base.embed(texts));
  }

  /** The frozen encoder embeds the queries once; the step trains the adapter on those embeddings. */
  async begin(texts: string[]): Promise<PendingStep> {
    const base = await this.base.embed(texts);
    return {
      queryEmb: this.adapt(base),
      finish: ({ rows, ...targets }) => this.trainer.step({ ...targets, queries: rows ? rows.map((r) => base[r]) : base }),
    };
  }

  private adapt(base: Float32Array[]): Float32Array[] {
    const w = this.trainer.weights.get('adapter.weight')!.data;
    const b = this.trainer.weights.get('adapter.bias')!.data;
    return base.map((q) => applyAdapter(w, b, q));
  }

  async saveCheckpoint(dir: string): Promise<void> {
    await this.trainer.save(dir, { optimizer: true });
    await writeFileAtomic(path.join(dir, ADAPTER_CONFIG), JSON.stringify(this.config, null, 2));
  }

  async saveModel(dir: string): Promise<void> {
    await this.trainer.save(dir);
    await writeFileAtomic(path.join(dir, ADAPTER_CONFIG), JSON.stringify(this.config, null, 2));
  }

  async dispose(): Promise<void> {
    await this.trainer.dispose();
    await this.base.dispose();
  }
}

async function readAdapterWeights(file: string): Promise<Map<string, Float32Tensor>> {
  const { tensors } = parseSafetensors(await readFile(file), file);
  return new Map([...tensors].map(([name, t]) => [name, { shape: t.shape, data: toFloat32(t, file, name) }]));
}
