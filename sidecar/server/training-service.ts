import { existsSync } from 'node:fs';
import { extname, join } from 'node:path';
import { Worker } from 'node:worker_threads';
import type { Device } from '../encoder/cuda-provider';
import { DEFAULT_LSR_SETTINGS, type LsrEvent } from '../lsr/lsr-trainer';
import type { TrainParams, TrainStarted, TrainingStatus } from './protocol';
import type { FromTrainWorker, ToTrainWorker, TrainJob } from './train-worker';

export interface TrainingServiceOptions {
  indexDir: string;
  modelsDir: string;
  /** The encoder the index was built with: training starts from it. */
  baseModel: string | undefined;
  /** Where the encoder runs (replugCode.encoder.device); training runs there too unless a request says otherwise. */
  device?: Device;
  trusted(): boolean;
  /** Why the configured encoder is not in use, if it could not be loaded. */
  encoderProblem(): string | undefined;
  onStatus(status: TrainingStatus): void;
}

/** Weight of the newest step in the seconds-per-step average behind the ETA. */
const ETA_SMOOTHING = 0.3;

/**
 * Runs one LSR training at a time in a worker thread (see train-worker.ts) and turns its events into a
 * TrainingStatus. Cancelling asks the worker to abort; the trainer checkpoints before it returns.
 */
export class TrainingService {
  private status: TrainingStatus = { state: 'idle', step: 0, steps: 0 };
  private worker: Worker | undefined;
  private exited: Promise<void> = Promise.resolve();

  constructor(private readonly opts: TrainingServiceOptions) {}

  current(): TrainingStatus {
    return this.status;
  }

  get running(): boolean {
    return this.worker !== undefined;
  }

  /** Resolves once the worker has loaded its queries and begun training; rejects with the worker's error otherwise. */
  start(params: TrainParams): Promise<TrainStarted> {
    if (this.worker) throw new Error(`Training run ${this.status.runId} is still running: stop it first (REPLUG: Stop Training).`);
    if (!this.opts.trusted()) throw new Error('Training calls the language model, which REPLUG never does in Restricted Mode: trust the workspace first.');
    const problem = this.opts.encoderProblem();
    if (!this.opts.baseModel || problem) {
      throw new Error(
        problem ? `Training needs dense search, but ${problem}.` : 'Training needs dense search: set replugCode.encoder.model to a sentence-encoder model and index the workspace first.',
      );
    }
    if (!params.lm?.baseUrl || !params.lm.model) {
      throw new Error('Training needs the LM teacher: set replugCode.lm.baseUrl and replugCode.lm.model (or run REPLUG: Start LM Server).');
    }
    const runId = params.resumeRunId ?? this.newRunId();
    const output = join(this.opts.modelsDir, runId);
    if (params.resumeRunId && !existsSync(output)) throw new Error(`There is no run ${runId} to resume in ${this.opts.modelsDir}.`);
    const settings = { ...DEFAULT_LSR_SETTINGS, ...params.settings };
    const job: TrainJob = {
      indexDir: this.opts.indexDir,
      model: this.opts.baseModel,
      output,
      settings,
      lm: params.lm,
      queries: params.queries ?? {},
      device: params.device ?? this.opts.device,
      resume: params.resumeRunId !== undefined,
      trusted: this.opts.trusted(),
    };
    const worker = startWorker(job);
    this.worker = worker;
    this.exited = new Promise((resolve) => worker.once('exit', () => resolve()));
    this.setStatus({ state: 'starting', runId, output, step: 0, steps: settings.steps, message: 'Loading queries and the model…' });

    return new Promise<TrainStarted>((resolve, reject) => {
      let settled = false;
      const fail = (message: string) => {
        this.setStatus({ ...this.status, state: 'failed', message });
        if (!settled) reject(new Error(message));
        settled = true;
      };
      worker.on('message', (m: FromTrainWorker) => {
        switch (m.type) {
          case 'started':
            this.setStatus({ ...this.status, state: 'running', message: [`${m.queries} training queries`, ...m.notes].join('; ') });
            settled = true;
            resolve({ runId, output, queries: m.queries });
            break;
          case 'event':
            this.onEvent(m.event);
            break;
          case 'finished':
            break; // the trainer's own `done` event already said how it ended
          case 'failed':
            fail(m.message);
            break;
        }
      });
      worker.on('error', (err) => fail(`The training worker crashed: ${err.message}`));
      worker.once('exit', (code) => {
        if (this.worker === worker) this.worker = undefined;
        if (this.status.state === 'running' || this.status.state === 'starting') fail(`The training worker exited (code ${code}) before the run ended.`);
      });
    });
  }

  /** A run name from the start time, with a counter when a run of the same second already has the folder. */
  private newRunId(): string {
    const stamp = `lsr-${new Date().toISOString().replace(/[-:]/g, '').replace(/\..*/, '')}`;
    let runId = stamp;
    for (let n = 2; existsSync(join(this.opts.modelsDir, runId)); n++) runId = `${stamp}-${n}`;
    return runId;
  }

  /** Stops the running training (it checkpoints first) and resolves with the final status. */
  async cancel(): Promise<TrainingStatus> {
    const worker = this.worker;
    if (!worker) return this.status;
    this.setStatus({ ...this.status, message: 'Stopping: saving a checkpoint…' });
    worker.postMessage({ type: 'cancel' } satisfies ToTrainWorker);
    await this.exited;
    return this.status;
  }

  async close(): Promise<void> {
    await this.cancel();
  }

  private onEvent(e: LsrEvent): void {
    switch (e.type) {
      case 'step': {
        const previous = this.status.secondsPerStep;
        const secondsPerStep = previous === undefined ? e.seconds.total : ETA_SMOOTHING * e.seconds.total + (1 - ETA_SMOOTHING) * previous;
        this.setStatus({
          ...this.status,
          state: 'running',
          step: e.step,
          steps: e.steps,
          loss: e.loss,
          entropyRetriever: e.entropyRetriever,
          entropyTeacher: e.entropyTeacher,
          lr: e.lr,
          secondsPerStep,
          etaSeconds: (e.steps - e.step) * secondsPerStep,
          message: undefined,
        });
        break;
      }
      case 'checkpoint':
        this.setStatus({ ...this.status, checkpointStep: e.step });
        break;
      case 'notice':
        this.setStatus({ ...this.status, message: e.message });
        break;
      case 'refresh':
        this.setStatus({ ...this.status, message: `Re-embedded ${e.passages} passages in ${e.seconds.toFixed(1)} s` });
        break;
      case 'done':
        this.setStatus({
          ...this.status,
          state: e.cancelled ? 'cancelled' : 'done',
          step: e.step,
          checkpointStep: e.step,
          etaSeconds: 0,
          message: e.cancelled ? `Stopped at step ${e.step}; checkpoint saved, resumable.` : `Trained ${e.step} steps: ${e.output}`,
        });
        break;
    }
  }

  private setStatus(status: TrainingStatus): void {
    this.status = status;
    this.opts.onStatus(status);
  }
}

/** dist/train-worker.js beside the bundled server; the .ts source when the server itself runs under tsx. */
function startWorker(job: TrainJob): Worker {
  if (extname(__filename) === '.js') return new Worker(join(__dirname, 'train-worker.js'), { workerData: job });
  // Workers do not inherit tsx's loader from `node --import tsx`: register its CommonJS hook in the worker first.
  const source = `require(${JSON.stringify(require.resolve('tsx/cjs'))}); require(${JSON.stringify(join(__dirname, 'train-worker.ts'))});`;
  return new Worker(source, { eval: true, workerData: job });
}
