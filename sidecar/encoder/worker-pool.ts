import { OrtWorker, type TensorValue, type WorkerInit } from './ort-worker';

/**
 * Several single-session workers that run batches side by side. On a CPU this beats one session with as many
 * intra-op threads: each batch is independent, so no thread waits at a barrier for a sibling the OS has
 * descheduled, which is what made one 2-thread session lose to transformers.js when other processes share the
 * cores (README › Encoder performance has the numbers).
 */
export class OrtWorkerPool {
  private constructor(private readonly workers: OrtWorker[]) {}

  /** Starts `size` workers on the same graph; fails (and stops any that started) when one cannot create its session. */
  static async start(init: WorkerInit, size: number): Promise<OrtWorkerPool> {
    // A lone worker (every GPU pool) takes the graph's buffer over, with no copy.
    if (size === 1) return new OrtWorkerPool([await OrtWorker.start(init)]);
    // One copy of the graph for all workers instead of one structured clone each.
    const shared = new Uint8Array(new SharedArrayBuffer(init.model.byteLength));
    shared.set(init.model);
    const started = await Promise.allSettled(Array.from({ length: size }, () => OrtWorker.start({ ...init, model: shared })));
    const workers = started.flatMap((s) => (s.status === 'fulfilled' ? [s.value] : []));
    const failed = started.find((s): s is PromiseRejectedResult => s.status === 'rejected');
    if (failed) {
      await Promise.all(workers.map((w) => w.close()));
      throw failed.reason;
    }
    return new OrtWorkerPool(workers);
  }

  get size(): number {
    return this.workers.length;
  }

  get inputNames(): string[] {
    return this.workers[0].inputNames;
  }

  get outputNames(): string[] {
    return this.workers[0].outputNames;
  }

  /** Runs on the worker with the fewest requests in flight (see OrtWorker.run). */
  run(feeds: Record<string, TensorValue>, fetches: string[]): Promise<Record<string, TensorValue>> {
    const idlest = this.workers.reduce((a, b) => (b.inFlight < a.inFlight ? b : a));
    return idlest.run(feeds, fetches);
  }

  async close(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.close()));
  }
}
