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
import { disableOrtTelemetry } from './ort-environment';

export interface WorkerInit {
  ortPath: string;
  model: Uint8Array;
  /** Providers to try in order; the first that creates a session wins. */
  providers: Provider[];
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

/** A tensor crossing the thread boundary; its element type follows from the array (float32, int32 or int64). */
export interface TensorValue {
  data: Float32Array | Int32Array | BigInt64Array;
  dims: number[];
}

type WorkerReply =
  | { type: 'ready'; provider: Provider; failures: string[]; inputNames: string[]; outputNames: string[] }
  | { type: 'failed'; failures: string[] }
  | { type: 'result'; id: number; outputs: Record<string, TensorValue> }
  | { type: 'error'; id: number; message: string };

interface RunRequest {
  id: number;
  feeds: Record<string, TensorValue>;
  fetches: string[];
}

/** Main-thread handle on the worker: one session, requests answered in order. */
export class OrtWorker {
  private nextId = 0;
  private readonly pending = new Map<number, { resolve: (r: Record<string, TensorValue>) => void; reject: (e: Error) => void }>();
  private failure: Error | undefined;

  private constructor(
    private readonly worker: Worker,
    readonly provider: Provider,
    /** Why earlier providers in the list failed. */
    readonly failures: string[],
    readonly inputNames: string[],
    readonly outputNames: string[],
  ) {
    worker.on('message', (msg: WorkerReply) => {
      if (msg.type !== 'result' && msg.type !== 'error') return;
      const p = this.pending.get(msg.id);
      this.pending.delete(msg.id);
      // An idle worker must not keep the process alive; a busy one must (its caller awaits it).
      if (this.pending.size === 0) worker.unref();
      if (msg.type === 'result') p?.resolve(msg.outputs);
      else p?.reject(new Error(`ONNX Runtime failed: ${msg.message}`));
    });
    worker.on('error', (err) => this.fail(err));
    worker.on('exit', (code) => this.fail(new Error(`ONNX Runtime worker exited (code ${code})`)));
    worker.unref();
  }

  /** Starts a worker and waits for its session; rejects with every provider's failure when none works. */
  static async start(init: WorkerInit): Promise<OrtWorker> {
    disableOrtTelemetry();
    // A pool's workers share one SharedArrayBuffer copy of the graph, which is shared rather than transferred.
    const transferList = init.model.buffer instanceof ArrayBuffer ? [init.model.buffer] : [];
    const worker = new Worker(workerSource(), { eval: true, workerData: init, transferList });
    const reply = await new Promise<WorkerReply>((resolve, reject) => {
      worker.once('message', resolve);
      worker.once('error', reject);
    });
    if (reply.type === 'ready') return new OrtWorker(worker, reply.provider, reply.failures, reply.inputNames, reply.outputNames);
    await worker.terminate();
    throw new Error(reply.type === 'failed' ? reply.failures.join('; ') : `unexpected worker reply ${reply.type}`);
  }

  /** Runs the session on `feeds` (their buffers are transferred: do not reuse them) and returns the `fetches` outputs. */
  run(feeds: Record<string, TensorValue>, fetches: string[]): Promise<Record<string, TensorValue>> {
    if (this.failure) return Promise.reject(this.failure);
    const req: RunRequest = { id: this.nextId++, feeds, fetches };
    return new Promise((resolve, reject) => {
      this.pending.set(req.id, { resolve, reject });
      this.worker.ref();
      this.worker.postMessage(req, Object.values(feeds).map((t) => t.data.buffer as ArrayBuffer));
    });
  }

  /** Requests sent and not yet answered. */
  get inFlight(): number {
    return this.pending.size;
  }

  async close(): Promise<void> {
    this.fail(new Error('encoder was disposed'));
    await this.worker.terminate();
  }

  private fail(err: Error): void {
    this.failure ??= err;
    for (const p of this.pending.values()) p.reject(this.failure);
    this.pending.clear();
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
  if (init.providers.some((p) => p !== 'cpu')) ort.env.logLevel = 'fatal';
  void (async () => {
    const failures: string[] = [];
    // ORT's native loader takes only a plain ArrayBuffer, not a pool's SharedArrayBuffer: copy (slice) it.
    const model = init.model.buffer instanceof ArrayBuffer ? init.model : init.model.slice();
    let session: import('onnxruntime-node').InferenceSession | undefined;
    let provider: Provider | undefined;
    for (const p of init.providers) {
      try {
        session = await ort.InferenceSession.create(model, {
          executionProviders: [p],
          ...init.options,
        });
        provider = p;
        break;
      } catch (err) {
        failures.push(`${p}: ${(err as Error).message}`);
      }
    }
    if (!session || !provider) {
      port.postMessage({ type: 'failed', failures } satisfies WorkerReply);
      return;
    }
    const s = session;
    // The session holds its own copy of the weights; let the graph bytes go.
    (init as Partial<WorkerInit>).model = undefined;
    port.postMessage({ type: 'ready', provider, failures, inputNames: [...s.inputNames], outputNames: [...s.outputNames] } satisfies WorkerReply);
    port.on('message', async (req: RunRequest) => {
      try {
        const feeds: Record<string, import('onnxruntime-node').Tensor> = {};
        for (const [name, { data, dims }] of Object.entries(req.feeds)) {
          const type = data instanceof Float32Array ? 'float32' : data instanceof Int32Array ? 'int32' : 'int64';
          feeds[name] = new ort.Tensor(type, data, dims);
        }
        const results = await s.run(feeds, req.fetches);
        const outputs: Record<string, TensorValue> = {};
        const transfer: ArrayBuffer[] = [];
        for (const name of req.fetches) {
          // Transfer each result without copying, unless it is a view into a larger native-owned buffer.
          const view = results[name].data as TensorValue['data'];
          const data = view.byteOffset === 0 && view.byteLength === view.buffer.byteLength ? view : view.slice();
          outputs[name] = { data, dims: [...results[name].dims] };
          transfer.push(data.buffer as ArrayBuffer);
        }
        port.postMessage({ type: 'result', id: req.id, outputs } satisfies WorkerReply, transfer);
      } catch (err) {
        port.postMessage({ type: 'error', id: req.id, message: (err as Error).message } satisfies WorkerReply);
      }
    });
  })();
}
