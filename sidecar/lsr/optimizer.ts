import { encodeSafetensors, parseSafetensors, toFloat32, type Float32Tensor } from '../encoder/safetensors';
import { AdamWThreads, sharedZeros } from './adamw-threads';

/**
 * AdamW (decoupled weight decay, as torch.optim.AdamW) over Float32Arrays updated in place, with global-norm
 * gradient clipping and a linear warmup / linear decay learning-rate schedule.
 */

export interface AdamWOptions {
  /** Peak learning rate. */
  lr: number;
  /** Updates the schedule spans; the rate reaches 0 after the last. */
  totalSteps: number;
  /** Share of totalSteps spent warming up linearly (default 0.1). */
  warmupFraction?: number;
  beta1?: number;
  beta2?: number;
  eps?: number;
  /** Decoupled weight decay (default 0.01); never applied to biases and LayerNorm parameters. */
  weightDecay?: number;
  /** Clip the global gradient norm to this (default 1; Infinity disables). */
  maxGradNorm?: number;
  /** Peak rates of parameters that do not learn at `lr`, by name (same schedule; the abstention score: see abstention.ts). */
  lrByName?: Readonly<Record<string, number>>;
}

export interface AdamWState {
  /** Updates taken so far. */
  step: number;
  m: Map<string, Float32Array>;
  v: Map<string, Float32Array>;
}

export interface UpdateInfo {
  /** Learning rate this update used. */
  lr: number;
  /** Global gradient norm before clipping. */
  gradNorm: number;
}

/**
 * Learning rate of update `step` (1-based) of `totalSteps`: rises linearly to `lr` over the warmup updates, then
 * falls linearly so that the last update still moves (lr/(decay steps)) and any update past the end gets 0.
 */
export function learningRate(step: number, opts: Pick<AdamWOptions, 'lr' | 'totalSteps' | 'warmupFraction'>): number {
  const warmup = Math.round((opts.warmupFraction ?? 0.1) * opts.totalSteps);
  if (step <= warmup) return (opts.lr * step) / warmup;
  return opts.lr * Math.max(0, (opts.totalSteps - step + 1) / (opts.totalSteps - warmup));
}

/** BERT convention: weight decay on matrices and embedding tables, not on biases or LayerNorm gains/shifts. */
export function isDecayed(name: string): boolean {
  return !name.endsWith('.bias') && !name.includes('LayerNorm');
}

export interface AdamWThreadsOption {
  /** Threads the update is split across, the calling thread included (default 1). */
  threads?: number;
}

export class AdamW {
  private readonly opts: Required<AdamWOptions>;
  private readonly state: AdamWState;
  /** The parameters at `lr` (on `threads` threads), then one group per other peak rate (few and small: main thread). */
  private readonly groups: { peakLr: number; runner: AdamWThreads }[];

  /** `params` are updated in place by `update`. */
  constructor(private readonly params: ReadonlyMap<string, Float32Array>, opts: AdamWOptions, { threads = 1 }: AdamWThreadsOption = {}) {
    if (!(opts.lr > 0)) throw new Error(`learning rate must be > 0, got ${opts.lr}`);
    if (!Number.isInteger(opts.totalSteps) || opts.totalSteps < 1) throw new Error(`totalSteps must be a positive integer, got ${opts.totalSteps}`);
    const warmupFraction = opts.warmupFraction ?? 0.1;
    if (!(warmupFraction >= 0 && warmupFraction < 1)) throw new Error(`warmupFraction must be in [0, 1), got ${warmupFraction}`);
    this.opts = { beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01, maxGradNorm: 1, lrByName: {}, ...opts, warmupFraction };
    for (const [name, rate] of Object.entries(this.opts.lrByName)) {
      if (!params.has(name)) throw new Error(`a learning rate is given for "${name}", which is not a parameter`);
      if (!(rate > 0)) throw new Error(`learning rate of "${name}" must be > 0, got ${rate}`);
    }
    // Shared memory, so that worker threads update the moments where checkpoints read them.
    const zeros = () => new Map([...params].map(([name, p]) => [name, sharedZeros(p.length)]));
    this.state = { step: 0, m: zeros(), v: zeros() };
    const tensors = [...params].map(([name, param]) => ({ name, param, m: this.state.m.get(name)!, v: this.state.v.get(name)!, decayed: isDecayed(name) }));
    const peakOf = (name: string) => this.opts.lrByName[name] ?? this.opts.lr;
    const rates = [...new Set([this.opts.lr, ...tensors.map((t) => peakOf(t.name))])];
    this.groups = rates.map((peakLr, i) => ({ peakLr, runner: new AdamWThreads(tensors.filter((t) => peakOf(t.name) === peakLr), i === 0 ? threads : 1) }));
  }

  get step(): number {
    return this.state.step;
  }

  /** Threads an update runs on (fewer than asked when the model is too small to gain from more). */
  get threads(): number {
    return this.groups[0].runner.threads;
  }

  /**
   * One update from `grads` (one per parameter, same lengths) whose global norm is `gradNorm` (the training graph
   * computes it). Takes ownership of the gradient arrays: their buffers may move to worker threads.
   */
  async update(grads: ReadonlyMap<string, Float32Array>, gradNorm: number): Promise<UpdateInfo> {
    for (const [name, p] of this.params) {
      const g = grads.get(name);
      if (!g || g.length !== p.length) throw new Error(`gradient for "${name}" is ${g ? `${g.length} values, expected ${p.length}` : 'missing'}`);
    }
    if (!(gradNorm >= 0)) throw new Error(`gradient norm must be a finite number ≥ 0, got ${gradNorm}`);
    const { beta1, beta2, eps, weightDecay, maxGradNorm } = this.opts;
    const t = ++this.state.step;
    const rates = this.groups.map(({ peakLr }) => learningRate(t, { ...this.opts, lr: peakLr }));
    await Promise.all(
      this.groups.map(({ runner }, i) =>
        runner.update(grads, {
          beta1,
          beta2,
          eps,
          // Clipping folds into the update as a factor on g, so no scaled copy of the gradients is made.
          clip: gradNorm > maxGradNorm ? maxGradNorm / (gradNorm + 1e-6) : 1,
          stepSize: rates[i] / (1 - beta1 ** t),
          invSqrtBc2: 1 / Math.sqrt(1 - beta2 ** t),
          decayKeep: 1 - rates[i] * weightDecay,
        }),
      ),
    );
    return { lr: rates[0], gradNorm };
  }

  /** The moments and step count (live arrays: copy them to keep a snapshot). */
  getState(): AdamWState {
    return this.state;
  }

  /** Copies `state` in (the moments stay in the shared arrays the update threads hold). */
  setState(state: AdamWState): void {
    for (const [name, p] of this.params) {
      for (const [kind, moments] of [['m', state.m], ['v', state.v]] as const) {
        const a = moments.get(name);
        if (!a || a.length !== p.length) throw new Error(`optimizer state has no ${kind} of ${p.length} values for "${name}": it belongs to another model or freeze setting`);
      }
    }
    for (const name of this.params.keys()) {
      this.state.m.get(name)!.set(state.m.get(name)!);
      this.state.v.get(name)!.set(state.v.get(name)!);
    }
    this.state.step = state.step;
  }

  /** The state as a safetensors file: tensors `m.<name>`, `v.<name>`, the step in the metadata. */
  encodeState(): Buffer {
    const tensors = new Map<string, Float32Tensor>();
    for (const [kind, moments] of [['m', this.state.m], ['v', this.state.v]] as const) {
      for (const [name, data] of moments) tensors.set(`${kind}.${name}`, { shape: [data.length], data });
    }
    return encodeSafetensors(tensors, { step: String(this.state.step) });
  }

  /** Restores a state written by `encodeState`; `file` only names the source in errors. */
  decodeState(bytes: Uint8Array, file: string): void {
    const { metadata, tensors } = parseSafetensors(bytes, file);
    const step = Number(metadata.step);
    if (!Number.isInteger(step) || step < 0) throw new Error(`${file}: optimizer state has no valid "step" in its metadata`);
    const state: AdamWState = { step, m: new Map(), v: new Map() };
    for (const [key, t] of tensors) {
      const kind = key.slice(0, 2);
      if (kind === 'm.' || kind === 'v.') state[kind[0] as 'm' | 'v'].set(key.slice(2), toFloat32(t, file, key));
    }
    this.setState(state);
  }

  async dispose(): Promise<void> {
    await Promise.all(this.groups.map(({ runner }) => runner.dispose()));
  }
}
