/**
 * LSR training in a worker thread (bundled to dist/train-worker.js). The trainer runs ONNX Runtime synchronously
 * for each step, which would stall the sidecar's event loop for the whole graph time; here it stalls only this
 * thread, so index and search requests keep being answered. The worker opens the index read-only.
 */
import { parentPort, workerData } from 'node:worker_threads';
import type { Device } from '../encoder/ort-encoder';
import { WorkspaceIndex } from '../index/workspace-index';
import { LmScorer } from '../lm/scorer';
import { DEFAULT_LSR_SETTINGS, trainLsr, type LsrEvent, type LsrSettings, type TrainingRecord } from '../lsr/lsr-trainer';
import { readyTeacher } from '../lsr/fit-queries';
import { DEFAULT_QUERY_SOURCE, loadQueries } from '../lsr/query-source';
import { lmFailureMessage } from './lm-failure';
import type { LmEndpoint, QuerySelection } from './protocol';

export interface TrainJob {
  indexDir: string;
  model: string;
  output: string;
  settings: LsrSettings;
  lm: LmEndpoint;
  queries: QuerySelection;
  device?: Device;
  resume: boolean;
  /** The workspace's trust when the run started; an untrusted workspace never reaches the LM. */
  trusted: boolean;
}

export type FromTrainWorker =
  /** The teacher answered and the queries fit it; `notes` say what was chosen (budgets, fallbacks). */
  | { type: 'started'; queries: number; notes: string[] }
  | { type: 'event'; event: LsrEvent }
  | { type: 'finished'; record: TrainingRecord }
  | { type: 'failed'; message: string };

export type ToTrainWorker = { type: 'cancel' };

async function run(job: TrainJob, post: (m: FromTrainWorker) => void, signal: AbortSignal): Promise<void> {
  if (!job.trusted) throw new Error('Training calls the language model, which REPLUG never does in Restricted Mode: trust the workspace first.');
  const source = { ...DEFAULT_QUERY_SOURCE, ...job.queries, split: 'train' as const };
  const reader = await WorkspaceIndex.open(job.indexDir, { readOnly: true });
  const sampled = await loadQueries(reader.passages(), source).finally(() => reader.close());
  if (sampled.length === 0) {
    throw new Error(
      job.queries.data
        ? `${job.queries.data} holds no usable queries (id,text rows with text to split).`
        : `No training queries: none of the indexed files fell into the training share (${source.trainFraction}). Raise replugCode.training.trainFileShare or index more files.`,
    );
  }
  const scorer = new LmScorer({ baseUrl: job.lm.baseUrl, model: job.lm.model, apiKey: job.lm.apiKey, concurrency: job.lm.concurrency });
  const notes: string[] = [];
  const { queries } = await readyTeacher(scorer, sampled, (line) => notes.push(line));
  post({ type: 'started', queries: queries.length, notes });
  const record = await trainLsr({
    indexDir: job.indexDir,
    model: job.model,
    output: job.output,
    scorer,
    queries,
    settings: job.settings,
    device: job.device,
    resume: job.resume,
    signal,
    onEvent: (event) => post({ type: 'event', event }),
  });
  post({ type: 'finished', record });
}

if (parentPort) {
  const port = parentPort;
  const abort = new AbortController();
  port.on('message', (m: ToTrainWorker) => {
    if (m.type === 'cancel') abort.abort();
  });
  const job = workerData as TrainJob;
  run({ ...job, settings: { ...DEFAULT_LSR_SETTINGS, ...job.settings } }, (m) => port.postMessage(m), abort.signal)
    .catch((err: unknown) => port.postMessage({ type: 'failed', message: lmFailureMessage(err, job.lm) }))
    // The cancel listener would keep the thread alive after the run.
    .finally(() => port.unref());
}
