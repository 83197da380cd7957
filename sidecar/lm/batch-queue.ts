interface Job<K, T, R> {
  kind: K;
  item: T;
  /** Tokens the item occupies in a padded run. */
  length: number;
  resolve: (result: R) => void;
  reject: (err: unknown) => void;
}

export interface BatchQueueLimits {
  /** Most padded tokens (rows × longest row) in one run. */
  tokens: number;
  /** Runs handed to the runner and not yet answered; more waiting jobs then gather into the next, larger batch. */
  inFlight: number;
}

/**
 * Gathers single-sequence jobs from concurrent requests into batched runs. Jobs of one kind (e.g. full
 * distributions or sparse scores) share a run; a run holds sequences of similar length, so little of it is padding.
 * Dispatch waits one event-loop turn, so all prompts of a request and the requests read in the same turn meet.
 */
export class BatchQueue<K, T, R> {
  private waiting: Job<K, T, R>[] = [];
  private inFlight = 0;
  private scheduled = false;

  constructor(
    private readonly run: (kind: K, items: T[]) => Promise<R[]>,
    private readonly limits: BatchQueueLimits,
  ) {}

  submit(kind: K, item: T, length: number): Promise<R> {
    return new Promise((resolve, reject) => {
      this.waiting.push({ kind, item, length, resolve, reject });
      if (!this.scheduled) {
        this.scheduled = true;
        setImmediate(() => {
          this.scheduled = false;
          this.dispatch();
        });
      }
    });
  }

  private dispatch(): void {
    while (this.inFlight < this.limits.inFlight && this.waiting.length > 0) {
      const jobs = this.take();
      this.inFlight++;
      this.run(jobs[0].kind, jobs.map((j) => j.item))
        .then(
          (results) => jobs.forEach((job, i) => job.resolve(results[i])),
          (err: unknown) => jobs.forEach((job) => job.reject(err)),
        )
        .finally(() => {
          this.inFlight--;
          this.dispatch();
        });
    }
  }

  /**
   * The batch that holds the oldest waiting job (so none waits forever): jobs of its kind sorted by length and cut
   * into runs within the token budget; the run containing it is taken, the rest wait for more company.
   */
  private take(): Job<K, T, R>[] {
    const oldest = this.waiting[0];
    const sorted = this.waiting.filter((job) => job.kind === oldest.kind).sort((a, b) => b.length - a.length);
    for (let start = 0; ; ) {
      // Longest first, so a run's padded length is its first row's.
      let end = start + 1;
      while (end < sorted.length && (end - start + 1) * sorted[start].length <= this.limits.tokens) end++;
      const batch = sorted.slice(start, end);
      if (batch.includes(oldest)) {
        const taken = new Set(batch);
        this.waiting = this.waiting.filter((job) => !taken.has(job));
        return batch;
      }
      start = end;
    }
  }
}
