import { Worker } from 'node:worker_threads';

/**
 * The AdamW element loop, split by tensor across the main thread and worker threads. The update is scalar- and
 * memory-bound (≈ 4 ns per parameter in V8), so threads divide it; the cores are free then, because ONNX Runtime
 * has finished the step's graph. Measured on MiniLM with word embeddings frozen (10.8M parameters): 40-60 ms of
 * CPU per update. ONNX ops do not do better on the CPU: ORT does not fuse elementwise ops, and the same update as
 * a dozen of them took 100-135 ms of CPU, with every updated tensor (weights and both moments) copied out of the
 * session each step.
 *
 * onnxruntime-node refuses tensors over a SharedArrayBuffer, so a worker updates shared mirrors of its weights
 * and the main thread copies them back into the arrays the session reads. The moments live only in shared
 * memory, so the main thread reads and writes them (checkpoints) without asking the workers.
 */

export interface UpdateCoefficients {
  beta1: number;
  beta2: number;
  eps: number;
  /** Gradient scale from clipping (1 when not clipped). */
  clip: number;
  /** lr / (1 − β1^t). */
  stepSize: number;
  /** 1 / √(1 − β2^t). */
  invSqrtBc2: number;
  /** 1 − lr·weightDecay, applied to decayed tensors only. */
  decayKeep: number;
}

export interface OptimizedTensor {
  name: string;
  /** Updated in place. */
  param: Float32Array;
  m: Float32Array;
  v: Float32Array;
  decayed: boolean;
}

/**
 * One AdamW update of one tensor in place (float64 arithmetic, float32 storage). Runs on the main thread and, from
 * its source text, in the workers: it must stay self-contained (no closures, no imports, no nested functions).
 */
export function adamwKernel(p: Float32Array, g: Float32Array, m: Float32Array, v: Float32Array, c: UpdateCoefficients, decayed: boolean): void {
  const { beta1, beta2, eps, clip, stepSize, invSqrtBc2 } = c;
  const keep = decayed ? c.decayKeep : 1;
  for (let i = 0; i < p.length; i++) {
    const gi = g[i] * clip;
    const mi = (m[i] = beta1 * m[i] + (1 - beta1) * gi);
    const vi = (v[i] = beta2 * v[i] + (1 - beta2) * gi * gi);
    p[i] = p[i] * keep - (stepSize * mi) / (Math.sqrt(vi) * invSqrtBc2 + eps);
  }
}

/** Below this many parameters per thread a worker's message round trip costs more than it saves. */
export const MIN_PARAMS_PER_THREAD = 1 << 18;

interface WorkerTensor {
  /** Shared mirror of the weights, and the shared moments. */
  param: Float32Array;
  m: Float32Array;
  v: Float32Array;
  decayed: boolean;
}

interface UpdateRequest {
  coefficients: UpdateCoefficients;
  grads: Float32Array[];
}

type WorkerReply = { type: 'done' } | { type: 'error'; message: string };

interface WorkerHandle {
  worker: Worker;
  tensors: OptimizedTensor[];
  mirrors: Float32Array[];
  /** The update the worker is working on. */
  pending?: { resolve: () => void; reject: (err: Error) => void };
}

/** Runs AdamW updates over tensors whose moments it allocates in shared memory; `threads` counts the main thread. */
export class AdamWThreads {
  /** Tensors the main thread updates itself. */
  private readonly local: OptimizedTensor[];
  private readonly workers: WorkerHandle[];
  /** Set once a worker fails or exits: the weights may be half updated, so every later update refuses. */
  private failure: Error | undefined;

  constructor(tensors: OptimizedTensor[], threads: number) {
    const total = tensors.reduce((a, t) => a + t.param.length, 0);
    const groups = partition(tensors, Math.max(1, Math.min(threads, tensors.length, Math.floor(total / MIN_PARAMS_PER_THREAD))));
    this.local = groups[0];
    this.workers = groups.slice(1).map((group) => this.startWorker(group));
  }

  /** Threads that take part in an update (1: the main thread alone). */
  get threads(): number {
    return this.workers.length + 1;
  }

  /**
   * One update. Takes ownership of the gradients: the buffers of those a worker updates are transferred to it.
   * Resolves once every tensor is updated.
   */
  async update(grads: ReadonlyMap<string, Float32Array>, c: UpdateCoefficients): Promise<void> {
    if (this.failure) throw this.failure;
    const replies = this.workers.map((handle) => {
      const own = handle.tensors.map((t) => transferable(grads.get(t.name)!));
      return new Promise<void>((resolve, reject) => {
        handle.pending = { resolve, reject };
        handle.worker.ref();
        handle.worker.postMessage({ coefficients: c, grads: own } satisfies UpdateRequest, own.map((g) => g.buffer as ArrayBuffer));
      });
    });
    for (const t of this.local) adamwKernel(t.param, grads.get(t.name)!, t.m, t.v, c, t.decayed);
    await Promise.all(replies);
    for (const { tensors, mirrors } of this.workers) tensors.forEach((t, i) => t.param.set(mirrors[i]));
  }

  async dispose(): Promise<void> {
    this.failure ??= new Error('the optimizer was disposed');
    await Promise.all(this.workers.map(({ worker }) => worker.terminate()));
  }

  private startWorker(tensors: OptimizedTensor[]): WorkerHandle {
    const mirrors = tensors.map((t) => shared(t.param));
    const init: WorkerTensor[] = tensors.map((t, i) => ({ param: mirrors[i], m: t.m, v: t.v, decayed: t.decayed }));
    const handle: WorkerHandle = { worker: new Worker(workerSource(), { eval: true, workerData: init }), tensors, mirrors };
    const settle = (err?: Error) => {
      const pending = handle.pending;
      handle.pending = undefined;
      handle.worker.unref();
      if (!err) return pending?.resolve();
      this.failure ??= err;
      pending?.reject(this.failure);
    };
    handle.worker.on('message', (r: WorkerReply) => settle(r.type === 'done' ? undefined : new Error(`optimizer worker failed: ${r.message}`)));
    handle.worker.on('error', (err) => (this.failure ??= new Error(`optimizer worker failed: ${err.message}`)));
    handle.worker.on('exit', (code) => settle(new Error(`optimizer worker exited (code ${code})`)));
    handle.worker.unref();
    return handle;
  }
}

/** Moments for `length` parameters in shared memory, zeroed. */
export function sharedZeros(length: number): Float32Array {
  return new Float32Array(new SharedArrayBuffer(length * Float32Array.BYTES_PER_ELEMENT));
}

function shared(data: Float32Array): Float32Array {
  const copy = sharedZeros(data.length);
  copy.set(data);
  return copy;
}

/** A gradient whose buffer can be transferred: ORT's outputs own theirs; a view into a larger buffer is copied. */
function transferable(g: Float32Array): Float32Array {
  return g.byteOffset === 0 && g.byteLength === g.buffer.byteLength && !(g.buffer instanceof SharedArrayBuffer) ? g : g.slice();
}

/** Longest-processing-time split into `n` groups of nearly equal parameter counts; group order is deterministic. */
function partition(tensors: OptimizedTensor[], n: number): OptimizedTensor[][] {
  const groups = Array.from({ length: n }, () => ({ size: 0, tensors: [] as OptimizedTensor[] }));
  for (const t of [...tensors].sort((a, b) => b.param.length - a.param.length || a.name.localeCompare(b.name))) {
    const lightest = groups.reduce((best, g) => (g.size < best.size ? g : best));
    lightest.tensors.push(t);
    lightest.size += t.param.length;
  }
  return groups.map((g) => g.tensors);
}

function workerSource(): string {
  // tsx compiles with keepNames, which wraps functions in a `__name` helper that the eval'd source lacks.
  // The kernel is passed as an argument: a bundler may rename module-level functions, not parameters.
  return `const __name = (f) => f;\n(${adamwWorkerMain.toString()})(${adamwKernel.toString()});`;
}

/** Runs inside a worker: updates its tensors on each request. Must not close over imports. */
function adamwWorkerMain(kernel: typeof adamwKernel): void {
  const { parentPort, workerData } = require('node:worker_threads') as typeof import('node:worker_threads');
  const tensors = workerData as WorkerTensor[];
  parentPort!.on('message', ({ coefficients, grads }: UpdateRequest) => {
    try {
      tensors.forEach((t, i) => kernel(t.param, grads[i], t.m, t.v, coefficients, t.decayed));
      parentPort!.postMessage({ type: 'done' } satisfies WorkerReply);
    } catch (err) {
      parentPort!.postMessage({ type: 'error', message: (err as Error).message } satisfies WorkerReply);
    }
  });
}
