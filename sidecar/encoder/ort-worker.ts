import { Worker } from 'node:worker_threads';

/**
 * ONNX Runtime runs on a worker thread because onnxruntime-node's `session.run` executes synchronously on the
 * calling thread (its promise only defers the start with setImmediate): a 32-sequence batch would freeze the
 * sidecar's JSON-RPC loop for the better part of a second.
 *
 * The worker is started from source text (`eval`) so the sidecar needs no separate worker bundle; its only
 * dependency is onnxruntime-node, loaded from the path the main thread resolved.
 */

export type { Provider } from './cuda-provider';
import type { Provider } from './cuda-provider';

export interface WorkerInit {
  ortPath: string;
  /** The graph; a pool's workers share one copy (it is only read while each creates its session). */
  model: Uint8Array;
  provider: Provider;
  options: SessionOptions;
}

type SessionOptions = import('onnxruntime-node').InferenceSession.SessionOptions;

/** Session options for the encoder (also used by the benchmark's raw-session baseline). */
export function encoderSessionOptions(threads: number): SessionOptions {
  return {
    intraOpNumThreads: threads,
    graphOptimizationLevel: 'all',
    // Idle ORT threads sleep instead of spinning: the sidecar shares the CPU with the editor and with its own main
    // thread (tokenising the next batch). Measured at batch 8 × 128 on 2 busy cores: 27 vs 14 seq/s, and the main
    // thread's longest stall 20 ms vs 55+ ms.
    extra: { session: { intra_op: { allow_spinning: '0' } } },
  };
}

type WorkerReply =
  | { type: 'ready'; inputNames: string[] }
  | { type: 'failed'; message: string }
  | { type: 'result'; id: number; data: Float32Array; dims: number[] }
  | { type: 'error'; id: number; message: string };

interface RunRequest {
  id: number;
  /** int64 inputs by name, all with the same dims. */
  inputs: Record<string, BigInt64Array>;
  dims: [number, number];
}

export interface RunResult {
  data: Float32Array;
  dims: number[];
}

/** Main-thread handle on the worker: one session, requests answered in order. */
export class OrtWorker {
  private nextId = 0;
  private readonly pendingRuns = new Map<number, { resolve: (r: RunResult) => void; reject: (e: Error) => void }>();
  private failure: Error | undefined;

  private constructor(
    private readonly worker: Worker,
    readonly inputNames: string[],
  ) {
    worker.on('message', (msg: WorkerReply) => {
      if (msg.type !== 'result' && msg.type !== 'error') return;
      const p = this.pendingRuns.get(msg.id);
      this.pendingRuns.delete(msg.id);
      // An idle worker must not keep the process alive; a busy one must (its caller awaits it).
      if (this.pendingRuns.size === 0) worker.unref();
      if (msg.type === 'result') p?.resolve({ data: msg.data, dims: msg.dims });
      else p?.reject(new Error(`ONNX Runtime failed: ${msg.message}`));
    });
    worker.on('error', (err) => this.fail(err));
    worker.on('exit', (code) => this.fail(new Error(`encoder worker exited (code ${code})`)));
    worker.unref();
  }

  /** Starts a worker and waits for its session; rejects with ORT's message when the session cannot be created. */
  static async start(init: WorkerInit): Promise<OrtWorker> {
    const worker = new Worker(workerSource(), { eval: true, workerData: init });
    const reply = await new Promise<WorkerReply>((resolve, reject) => {
      worker.once('message', resolve);
      worker.once('error', reject);
    });
    if (reply.type === 'ready') return new OrtWorker(worker, reply.inputNames);
    await worker.terminate();
    throw new Error(reply.type === 'failed' ? reply.message : `unexpected worker reply ${reply.type}`);
  }

  /** Requests sent and not yet answered. */
  get pending(): number {
    return this.pendingRuns.size;
  }

  run(inputs: Record<string, BigInt64Array>, dims: [number, number]): Promise<RunResult> {
    if (this.failure) return Promise.reject(this.failure);
    const req: RunRequest = { id: this.nextId++, inputs, dims };
    return new Promise((resolve, reject) => {
      this.pendingRuns.set(req.id, { resolve, reject });
      this.worker.ref();
      this.worker.postMessage(req, Object.values(inputs).map((a) => a.buffer as ArrayBuffer));
    });
  }

  async close(): Promise<void> {
    this.fail(new Error('encoder was disposed'));
    await this.worker.terminate();
  }

  private fail(err: Error): void {
    this.failure ??= err;
    for (const p of this.pendingRuns.values()) p.reject(this.failure);
    this.pendingRuns.clear();
  }
}

function workerSource(): string {
  // tsx compiles with keepNames, which wraps functions in a `__name` helper that the eval'd source lacks.
  return `const __name = (f) => f;\n(${ortWorkerMain.toString()})();`;
}

/** Runs inside the worker: creates the session, then answers run requests in order. Must not close over imports. */
function ortWorkerMain(): void {
  const { parentPort, workerData } = require('node:worker_threads') as typeof import('node:worker_threads');
  const init = workerData as WorkerInit;
  const ort = require(init.ortPath) as typeof import('onnxruntime-node');
  const port = parentPort!;
  // A failed GPU provider load also prints native error lines to stderr; the caller reports the failure in words.
  if (init.provider !== 'cpu') ort.env.logLevel = 'fatal';
  void (async () => {
    let s: import('onnxruntime-node').InferenceSession;
    try {
      // ORT's native loader takes only a plain ArrayBuffer, not a pool's SharedArrayBuffer: copy (slice) it.
      const model = init.model.buffer instanceof ArrayBuffer ? init.model : init.model.slice();
      s = await ort.InferenceSession.create(model, { executionProviders: [init.provider], ...init.options });
    } catch (err) {
      port.postMessage({ type: 'failed', message: (err as Error).message } satisfies WorkerReply);
      return;
    }
    // The session holds its own copy of the weights; let the graph bytes go.
    (init as Partial<WorkerInit>).model = undefined;
    // Sentence-transformers exports have both; the pooled one saves work, per-token states are pooled by the caller.
    const outputName = ['sentence_embedding', 'last_hidden_state'].find((n) => s.outputNames.includes(n)) ?? s.outputNames[0];
    port.postMessage({ type: 'ready', inputNames: [...s.inputNames] } satisfies WorkerReply);
    port.on('message', async (req: RunRequest) => {
      try {
        const feeds: Record<string, import('onnxruntime-node').Tensor> = {};
        for (const [name, data] of Object.entries(req.inputs)) feeds[name] = new ort.Tensor('int64', data, req.dims);
        const out = (await s.run(feeds, [outputName]))[outputName];
        // Transfer the result without copying, unless it is a view into a larger native-owned buffer.
        const view = out.data as Float32Array;
        const data = view.byteOffset === 0 && view.byteLength === view.buffer.byteLength ? view : view.slice();
        port.postMessage({ type: 'result', id: req.id, data, dims: [...out.dims] } satisfies WorkerReply, [data.buffer as ArrayBuffer]);
      } catch (err) {
        port.postMessage({ type: 'error', id: req.id, message: (err as Error).message } satisfies WorkerReply);
      }
    });
  })();
}
