import * as ort from 'onnxruntime-node';
import { performance } from 'node:perf_hooks';
import type { Float32Tensor } from '../encoder/safetensors';
import { ABSTAIN_SCORE } from '../retrieve/abstention';
import { packTargets, type LsrTargets } from './lsr-batch';
import { AdamW, type AdamWOptions } from './optimizer';
import { GRAD_NORM, GRAD_PREFIX, QUERY_EMB } from './train-graph/train-outputs';

export interface Gradients {
  /** mean over the batch of KL(Q ‖ P_R) at the current weights. */
  loss: number;
  /** Per query, log P_R over its k candidates (and, with abstention, the empty passage last). */
  logProbs: Float32Array[];
  /** Per query, its L2-normalised embedding at the current weights. */
  queryEmb: Float32Array[];
  /** ∂loss/∂weight per trainable weight. */
  grads: Map<string, Float32Array>;
  /** Global norm of `grads` (before clipping). */
  gradNorm: number;
}

export interface StepResult extends Omit<Gradients, 'grads'> {
  /** Updates taken so far, this one included. */
  step: number;
  lr: number;
  /** Milliseconds in the ORT graph (forward + backward) and in the optimizer. */
  graphMs: number;
  optimizerMs: number;
}

/**
 * Runs a training-step graph (weights as inputs, `grad.<name>` outputs) and applies AdamW to its weights in place,
 * on `threads` threads. The model-specific inputs (token ids, or embeddings for the adapter) come from the caller.
 * Other graphs that read the live weights (a step's forward half, the query encoder) run through `run`, which
 * never lets them read while an update is writing: with worker threads, an update spans several event-loop turns.
 */
export class GraphTrainer {
  readonly optimizer: AdamW;
  /**
   * Bytes fed to and fetched from ONNX Runtime so far. onnxruntime-node has no device-side tensors for CUDA, so
   * on a GPU each of these bytes is a host↔device copy.
   */
  readonly transferred = { in: 0, out: 0 };
  private readonly weightFeeds = new Map<string, ort.Tensor>();
  private weightsFree: Promise<unknown> = Promise.resolve();
  /** The graph scores an empty passage after the k candidates (its weights hold the abstention score). */
  private readonly abstains: boolean;

  constructor(
    private readonly session: ort.InferenceSession,
    /** Updated in place; graphs read them by name, the step trains `trainable`. */
    readonly weights: ReadonlyMap<string, Float32Tensor>,
    readonly trainable: readonly string[],
    private readonly dim: number,
    optimizer: AdamWOptions,
    /** Retrieval temperature γ for batches that do not set their own. */
    private readonly defaultGamma: number,
    threads: number,
  ) {
    // The tensors wrap the live arrays, so in-place updates are what the next run reads.
    for (const [name, w] of weights) this.weightFeeds.set(name, new ort.Tensor('float32', w.data, w.shape));
    this.abstains = weights.has(ABSTAIN_SCORE);
    this.optimizer = new AdamW(new Map(trainable.map((n) => [n, weights.get(n)!.data])), optimizer, { threads });
  }

  /** Runs `session` on `inputs` and the live weights it reads. */
  async run(session: ort.InferenceSession, inputs: Record<string, ort.Tensor>): Promise<ort.InferenceSession.ReturnType> {
    const feeds = { ...inputs };
    for (const name of session.inputNames) {
      const w = this.weightFeeds.get(name);
      if (w) feeds[name] = w;
    }
    const out = await this.exclusive(() => session.run(feeds));
    this.transferred.in += bytes(feeds);
    this.transferred.out += bytes(out);
    return out;
  }

  async gradients(inputs: Record<string, ort.Tensor>, targets: LsrTargets & { gamma?: number }): Promise<Gradients> {
    const gamma = targets.gamma ?? this.defaultGamma;
    if (!(gamma > 0)) throw new Error(`temperature gamma must be > 0, got ${gamma}`);
    const batch = targets.candidates.length;
    const { candEmb, targetQ, k, columns } = packTargets(targets, batch, this.dim, this.abstains);
    const out = await this.run(this.session, {
      ...inputs,
      cand_emb: new ort.Tensor('float32', candEmb, [batch, k, this.dim]),
      target_q: new ort.Tensor('float32', targetQ, [batch, columns]),
      gamma: new ort.Tensor('float32', new Float32Array([gamma]), []),
    });
    const rows = (t: ort.Tensor, width: number) => {
      const data = t.data as Float32Array;
      return Array.from({ length: batch }, (_, b) => data.slice(b * width, (b + 1) * width));
    };
    return {
      loss: (out.loss.data as Float32Array)[0],
      logProbs: rows(out.log_probs, columns),
      queryEmb: rows(out[QUERY_EMB], this.dim),
      grads: new Map(this.trainable.map((n) => [n, out[GRAD_PREFIX + n].data as Float32Array])),
      gradNorm: (out[GRAD_NORM].data as Float32Array)[0],
    };
  }

  async step(inputs: Record<string, ort.Tensor>, targets: LsrTargets & { gamma?: number }): Promise<StepResult> {
    const t0 = performance.now();
    const { grads, ...result } = await this.gradients(inputs, targets);
    const t1 = performance.now();
    const { lr } = await this.exclusive(() => this.optimizer.update(grads, result.gradNorm));
    const t2 = performance.now();
    return { ...result, step: this.optimizer.step, lr, graphMs: t1 - t0, optimizerMs: t2 - t1 };
  }

  async dispose(): Promise<void> {
    await this.optimizer.dispose();
    await this.session.release();
  }

  /** Runs `task` after every earlier one has settled (runs and updates take turns on the weights). */
  private exclusive<T>(task: () => Promise<T>): Promise<T> {
    const result = this.weightsFree.then(task, task);
    this.weightsFree = result.catch(() => undefined);
    return result;
  }
}

function bytes(tensors: Record<string, ort.Tensor>): number {
  return Object.values(tensors).reduce((sum, t) => sum + (t.data as ArrayBufferView).byteLength, 0);
}
