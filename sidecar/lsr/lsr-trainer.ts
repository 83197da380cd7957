import { existsSync, readFileSync } from 'node:fs';
import { appendFile, cp, mkdir, readdir, readFile, rm } from 'node:fs/promises';
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';
import type { Passage } from '../corpus/passage';
import type { Device } from '../encoder/ort-encoder';
import { logSoftmax } from '../eval/ensemble';
import { writeFileAtomic, writeFileDurable } from '../index/atomic-file';
import { commitGeneration, readCurrentGeneration } from '../index/generations';
import { WorkspaceIndex } from '../index/workspace-index';
import type { EncoderStamp, IndexManifest } from '../index/manifest';
import { loadModelFolder } from '../encoder/model-folder';
import { resolveModel } from '../encoder/model-source';
import { isAdapterFolder, readAdapterConfig } from '../encoder/query-adapter';
import type { Scorer } from '../lm/scorer';
import { RefreshedCandidates, StoredCandidates, type CandidateIndex } from './candidate-index';
import { seededRandom, type TrainingQuery } from './training-queries';
import { AdapterQueryTrainer, createQueryTrainer, type QueryTrainer, type StepRunner } from './query-trainer';

export type TrainingMode = 'query-tower' | 'shared';

export interface LsrSettings {
  /** query-tower: only a copy of the encoder that embeds queries learns, stored document vectors stay valid.
   *  shared: REPLUG's single encoder; documents are re-embedded every `refreshEvery` steps. */
  mode: TrainingMode;
  /** Passages retrieved per query and scored by the LM (REPLUG: 20). */
  k: number;
  /** Retrieval temperature γ of P_R = softmax(cos/γ). */
  gamma: number;
  /** LM temperature β of Q = softmax(log P_LM(y|d,x)/β). */
  beta: number;
  lr: number;
  warmupFraction: number;
  batchSize: number;
  steps: number;
  /** shared mode: steps between document re-embeddings (REPLUG: 3k). */
  refreshEvery: number;
  checkpointEvery: number;
  freezeWordEmbeddings: boolean;
  freezeLayers: number;
  seed: number;
  /**
   * Put an empty passage ∅ among each query's k candidates: the LM scores the context alone, the retriever a learned
   * score τ on the cosine scale, so P_R learns when no passage helps (see retrieve/abstention.ts).
   */
  abstain: boolean;
  /** Peak learning rate of τ: one number on the cosine scale, which `lr` (sized for the encoder's weights) would barely move. */
  abstainLr: number;
}

export const DEFAULT_LSR_SETTINGS: LsrSettings = {
  mode: 'query-tower',
  k: 20,
  gamma: 0.1,
  beta: 0.1,
  lr: 2e-5,
  warmupFraction: 0.1,
  batchSize: 8,
  steps: 200,
  refreshEvery: 100,
  checkpointEvery: 50,
  freezeWordEmbeddings: true,
  freezeLayers: 0,
  seed: 0,
  abstain: false,
  abstainLr: 1e-2,
};

export interface LsrRun {
  /** Index built with `model` (dense). */
  indexDir: string;
  /** The encoder the index was built with: the starting point. */
  model: string;
  /** Where the fine-tuned model folder, checkpoints and metrics go. */
  output: string;
  scorer: Scorer;
  queries: TrainingQuery[];
  settings: LsrSettings;
  device?: Device;
  /** Continue from the last checkpoint in `output` (same settings and index required). */
  resume?: boolean;
  /** Replace a training run already in `output` (without it, such a folder is refused). */
  overwrite?: boolean;
  /** The caller's description of the run (teacher, budgets, query source), saved in every checkpoint for --resume. */
  spec?: object;
  signal?: AbortSignal;
  onEvent?: (event: LsrEvent) => void;
  /** How steps run (default: the device's plan, every thread); bench:train compares plans. */
  stepRunner?: StepRunner;
}

export interface StepMetrics {
  step: number;
  steps: number;
  /** Mean KL(Q ‖ P_R) before the update (the training loss). */
  loss: number;
  /** Mean entropy (nats) of the retriever's and the teacher's distributions over the k passages (and ∅). */
  entropyRetriever: number;
  entropyTeacher: number;
  lr: number;
  gradNorm: number;
  /** Queries in the step (those with fewer than k passages to retrieve are left out). */
  queries: number;
  /** With abstention: the mean share of ∅ in P_R and in Q, and τ after the update. */
  abstention?: { retriever: number; teacher: number; score: number };
  lmPairs: number;
  /** Seconds per phase of this step. */
  seconds: { encode: number; retrieve: number; lm: number; train: number; optimizer: number; total: number };
}

export type LsrEvent =
  | ({ type: 'step' } & StepMetrics)
  | { type: 'checkpoint'; step: number; dir: string }
  | { type: 'refresh'; step: number; passages: number; seconds: number }
  /** Something the user should know once, such as training on the CPU although CUDA was wanted. */
  | { type: 'notice'; message: string }
  | { type: 'done'; step: number; output: string; cancelled: boolean };

/** Written beside the weights of an LSR-trained model, so search and eval know how to use it. */
export interface TrainingRecord {
  mode: TrainingMode;
  /** query-tower: the fingerprint of the document encoder whose vectors this query encoder was trained against. */
  documentEncoder?: { model: string; fingerprint: string };
  step: number;
  settings: LsrSettings;
}

export const TRAINING_RECORD = 'replug-training.json';

/** The training record of a model folder made by `trainLsr`, or undefined for any other model. */
export function readTrainingRecord(model: string): TrainingRecord | undefined {
  const file = path.join(model, TRAINING_RECORD);
  return existsSync(file) ? (JSON.parse(readFileSync(file, 'utf8')) as TrainingRecord) : undefined;
}

/** Whether `model` is a query tower trained against the document vectors of the encoder with this fingerprint. */
export function isQueryTowerFor(model: string, documentFingerprint: string): boolean {
  return readTrainingRecord(model)?.documentEncoder?.fingerprint === documentFingerprint;
}
const STATE_FILE = 'trainer-state.json';
export const METRICS_FILE = 'metrics.jsonl';
/** Shared mode: the document vectors of the last refresh, saved with a checkpoint so a resumed run searches the same ones. */
const VECTORS_FILE = 'document-vectors.f32';

/** Which index a run trains against; a resumed run must find the same one. */
export interface IndexStamp {
  fingerprint: string;
  updatedAt: string;
  passages: number;
}

/** What a checkpoint holds besides the weights. */
export interface CheckpointState {
  step: number;
  settings: LsrSettings;
  index?: IndexStamp;
  /** Shared mode: the step whose weights embedded the saved document vectors (0: the index's own vectors). */
  refreshStep?: number;
  /** The caller's LsrRun.spec. */
  spec?: unknown;
}

/** The state of the last checkpoint in `output`, or undefined when it has none. */
export async function readCheckpointState(output: string): Promise<CheckpointState | undefined> {
  const generation = await readCurrentGeneration(path.join(output, 'checkpoints'));
  if (!generation) return undefined;
  const file = path.join(generation.dir, STATE_FILE);
  if (!existsSync(file)) throw new Error(`checkpoint ${generation.dir} has no ${STATE_FILE}; start a new run in another --output`);
  const state = JSON.parse(await readFile(file, 'utf8')) as CheckpointState;
  // A setting added since the checkpoint was written takes its default: what the run did before it existed.
  return { ...state, settings: { ...DEFAULT_LSR_SETTINGS, ...state.settings } };
}
/** Passages embedded per call when shared mode refreshes document vectors. */
const REFRESH_BATCH = 64;

/**
 * REPLUG LM-Supervised Retrieval (§4): each step embeds a batch of queries x with the current encoder, retrieves
 * the top-k passages (never from the query's own file or CSV row), asks the frozen LM for log P(y | d ⊕ x), and
 * moves the retriever's softmax over the k passages towards the LM's. Checkpoints are atomic generations under
 * `output/checkpoints`; a cancelled run saves first.
 */
export async function trainLsr(run: LsrRun): Promise<TrainingRecord> {
  const { settings } = run;
  validate(run);
  const checkpoints = path.join(run.output, 'checkpoints');
  const replace = !run.resume && (await checkOutputFolder(run.output, run.overwrite ?? false));
  if (replace && isWithin(run.model, run.output)) {
    throw new Error(`--overwrite would delete ${run.model}, the model this run starts from: choose another --output`);
  }
  const manifest = await WorkspaceIndex.readManifest(run.indexDir);
  if (!manifest?.encoder) throw new Error(`the index at ${run.indexDir} has no vectors: run index with --model ${run.model} first`);
  if (!run.resume) await assertStartsFromIndexEncoder(run.model, manifest.encoder);
  // Only a run that passed every check replaces the old one.
  if (replace) await rm(run.output, { recursive: true, force: true });
  await mkdir(run.output, { recursive: true });
  const resumeFrom = run.resume ? await readCurrentGeneration(checkpoints) : undefined;
  if (run.resume && !resumeFrom) throw new Error(`nothing to resume: ${checkpoints} has no checkpoint`);
  const saved = resumeFrom ? await readCheckpointState(run.output) : undefined;
  if (saved) assertSameSettings(saved.settings, settings);
  const indexStamp = stampOf(manifest);
  if (saved?.index) assertSameIndex(saved.index, indexStamp, run.indexDir);
  // A run killed after its checkpoint logged steps the resumed run does again: keep the log in step with the weights.
  if (saved) await truncateMetrics(path.join(run.output, METRICS_FILE), saved.step);
  // The checkpoint generation is replaced (and deleted) by the next checkpoint, but its tokenizer and config files
  // are copied into every later save: start from a private copy.
  const source = resumeFrom ? path.join(run.output, `.resume-${process.pid}`) : run.model;
  if (resumeFrom) {
    await rm(source, { recursive: true, force: true });
    await cp(resumeFrom.dir, source, { recursive: true });
  }
  const index = await WorkspaceIndex.open(run.indexDir, { readOnly: true });
  let trainer: QueryTrainer;
  try {
    trainer = await createQueryTrainer({
      model: source,
      device: run.device,
      ...run.stepRunner,
      gamma: settings.gamma,
      freezeWordEmbeddings: settings.freezeWordEmbeddings,
      freezeLayers: settings.freezeLayers,
      resume: resumeFrom !== undefined,
      optimizer: { lr: settings.lr, totalSteps: settings.steps, warmupFraction: settings.warmupFraction },
      abstain: settings.abstain ? { lr: settings.abstainLr } : undefined,
    });
  } catch (err) {
    await index.close();
    if (resumeFrom) await rm(source, { recursive: true, force: true });
    throw err;
  }
  const refuse = async (message: string): Promise<never> => {
    await trainer.dispose();
    await index.close();
    if (resumeFrom) await rm(source, { recursive: true, force: true });
    throw new Error(message);
  };
  if (trainer.dim !== manifest.encoder.dim) {
    await refuse(`the index holds ${manifest.encoder.dim}-d vectors but ${run.model} makes ${trainer.dim}-d ones: index with this model first`);
  }
  if (settings.mode === 'shared' && trainer instanceof AdapterQueryTrainer) {
    await refuse(`${run.model} is a plain ONNX encoder: only a query adapter can be trained for it, so use --mode query-tower`);
  }
  if (trainer.fallbackReason) run.onEvent?.({ type: 'notice', message: trainer.fallbackReason });
  const record = (step: number): TrainingRecord => ({
    mode: settings.mode,
    documentEncoder: settings.mode === 'query-tower' ? { model: manifest.encoder!.model ?? run.model, fingerprint: manifest.encoder!.fingerprint } : undefined,
    step,
    settings,
  });

  let candidates: CandidateIndex = new StoredCandidates(index);
  /** Shared mode: the document vectors of the last refresh, and the step whose weights made them. */
  let refreshed: { step: number; vectors: Float32Array[] } | undefined;
  const passages = settings.mode === 'shared' ? index.passages() : [];
  // Synchronous, unlike REPLUG's asynchronous refresh: each step then sees exactly the vectors of the last refresh
  // step's weights, so a run is reproducible and a resumed run equals an uninterrupted one.
  const refresh = async (step: number) => {
    const t = performance.now();
    const vectors: Float32Array[] = [];
    for (let i = 0; i < passages.length; i += REFRESH_BATCH) {
      const slice = passages.slice(i, i + REFRESH_BATCH);
      vectors.push(...(await trainer.embed(slice.map((p) => p.text))));
    }
    useRefreshed(step, vectors);
    run.onEvent?.({ type: 'refresh', step, passages: passages.length, seconds: (performance.now() - t) / 1000 });
  };
  const useRefreshed = (step: number, vectors: Float32Array[]) => {
    refreshed = { step, vectors };
    candidates = RefreshedCandidates.build(passages, vectors);
  };

  const saveCheckpoint = async (step: number) => {
    const gen = await commitGeneration(checkpoints, async (dir) => {
      await trainer.saveCheckpoint(dir);
      if (refreshed) await writeFileDurable(path.join(dir, VECTORS_FILE), packVectors(refreshed.vectors));
      const state: CheckpointState = { step, settings, index: indexStamp, refreshStep: refreshed?.step ?? 0, spec: run.spec };
      await writeFileDurable(path.join(dir, STATE_FILE), JSON.stringify(state, null, 2));
    });
    run.onEvent?.({ type: 'checkpoint', step, dir: gen.dir });
  };

  let step = resumeFrom ? trainer.optimizerStep : 0;
  let cancelled = false;
  try {
    if (saved?.refreshStep && resumeFrom) {
      useRefreshed(saved.refreshStep, unpackVectors(await readFile(path.join(resumeFrom.dir, VECTORS_FILE)), passages.length, trainer.dim));
    }
    while (step < settings.steps) {
      if (run.signal?.aborted) {
        cancelled = true;
        break;
      }
      const metrics = await trainOneStep(run, trainer, candidates, step);
      step = metrics.step;
      await appendFile(path.join(run.output, METRICS_FILE), `${JSON.stringify(metrics)}\n`);
      run.onEvent?.({ type: 'step', ...metrics });
      if (settings.mode === 'shared' && step % settings.refreshEvery === 0 && step < settings.steps) await refresh(step);
      if (step % settings.checkpointEvery === 0 && step < settings.steps) await saveCheckpoint(step);
    }
    // The last state is always checkpointed, so a cancelled run resumes where it stopped.
    await saveCheckpoint(step);
    if (!cancelled) {
      await trainer.saveModel(run.output);
      await writeFileDurable(path.join(run.output, TRAINING_RECORD), JSON.stringify(record(step), null, 2));
    }
    run.onEvent?.({ type: 'done', step, output: run.output, cancelled });
    return record(step);
  } finally {
    await trainer.dispose();
    await index.close();
    if (resumeFrom) await rm(source, { recursive: true, force: true });
  }
}

/** Picks the step's queries from a seeded permutation per epoch, so a resumed run sees the same order. */
function batchFor(queries: TrainingQuery[], step: number, batchSize: number, seed: number): TrainingQuery[] {
  const perEpoch = Math.max(1, Math.floor(queries.length / batchSize));
  const epoch = Math.floor(step / perEpoch);
  const order = queries.map((_, i) => i);
  const rand = seededRandom(`epoch:${seed}:${epoch}`);
  for (let i = order.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [order[i], order[j]] = [order[j], order[i]];
  }
  const start = (step % perEpoch) * batchSize;
  return order.slice(start, start + batchSize).map((i) => queries[i]);
}

/** A query never retrieves its own file (or CSV row): that would teach the retriever to find the answer verbatim. */
export function ownSource(query: TrainingQuery): (passage: Passage) => boolean {
  return (passage) => passage.path === query.path && (query.docId === undefined || passage.docId === query.docId);
}

async function trainOneStep(run: LsrRun, trainer: QueryTrainer, candidates: CandidateIndex, step: number): Promise<StepMetrics> {
  const { settings } = run;
  const t0 = performance.now();
  const batch = batchFor(run.queries, step, settings.batchSize, settings.seed);
  // The step's own forward pass: its query embeddings are what retrieval uses, and its finish reuses it.
  const pending = await trainer.begin(batch.map((q) => q.context));
  const queryVectors = pending.queryEmb;
  const t1 = performance.now();

  const kept: number[] = [];
  const hits = batch.map((query, b) => {
    const found = candidates.search(queryVectors[b], settings.k, ownSource(query));
    if (found.length === settings.k) kept.push(b);
    return found;
  });
  if (kept.length === 0) throw new Error(`no training query has ${settings.k} passages to retrieve: lower k or index more code`);
  const t2 = performance.now();

  // With abstention each query's candidates end with the empty passage: the LM scores the context alone.
  const docs = (b: number) => [...hits[b].map((hit) => hit.passage.text), ...(settings.abstain ? [''] : [])];
  const pairs = kept.flatMap((b) => docs(b).map((doc) => ({ doc, context: batch[b].context, continuation: batch[b].continuation })));
  const scores = await run.scorer.score(pairs);
  const t3 = performance.now();

  const columns = pairs.length / kept.length;
  const target = kept.map((_, j) => {
    const logProbs = scores.slice(j * columns, (j + 1) * columns).map((s) => s.logProb / settings.beta);
    return Float64Array.from(logSoftmax(logProbs), Math.exp);
  });
  const result = await pending.finish({
    rows: kept,
    candidates: kept.map((b) => hits[b].map((h) => h.vector)),
    target,
    gamma: settings.gamma,
  });
  const t4 = performance.now();
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
  return {
    step: result.step,
    steps: settings.steps,
    loss: result.loss,
    entropyRetriever: mean(result.logProbs.map((lp) => -Array.from(lp).reduce((s, l) => s + Math.exp(l) * l, 0))),
    entropyTeacher: mean(target.map((q) => -Array.from(q).reduce((s, p) => s + (p > 0 ? p * Math.log(p) : 0), 0))),
    lr: result.lr,
    gradNorm: result.gradNorm,
    queries: kept.length,
    lmPairs: pairs.length,
    abstention: settings.abstain
      ? {
          retriever: mean(result.logProbs.map((lp) => Math.exp(lp[settings.k]))),
          teacher: mean(target.map((q) => q[settings.k])),
          score: trainer.abstentionScore!,
        }
      : undefined,
    seconds: {
      encode: (t1 - t0) / 1000,
      retrieve: (t2 - t1) / 1000,
      lm: (t3 - t2) / 1000,
      train: result.graphMs / 1000,
      optimizer: result.optimizerMs / 1000,
      total: (t4 - t0) / 1000,
    },
  };
}

function validate(run: LsrRun): void {
  const s = run.settings;
  if (run.queries.length === 0) throw new Error('no training queries: give --data queries.csv, or a workspace with enough code');
  for (const key of ['k', 'batchSize', 'steps', 'refreshEvery', 'checkpointEvery'] as const) {
    if (!Number.isInteger(s[key]) || s[key] < 1) throw new Error(`${key} must be a positive whole number, got ${s[key]}`);
  }
  for (const key of ['gamma', 'beta', 'lr', 'abstainLr'] as const) {
    if (!(s[key] > 0)) throw new Error(`${key} must be positive, got ${s[key]}`);
  }
}

/**
 * Training starts from the encoder the index's vectors came from (or from a model already trained against them):
 * otherwise the candidates' vectors and the query encoder would live in different spaces.
 */
async function assertStartsFromIndexEncoder(model: string, stored: EncoderStamp): Promise<void> {
  if (isQueryTowerFor(model, stored.fingerprint)) return;
  const encoder = isAdapterFolder(model) ? (await readAdapterConfig(model)).base : model;
  const folder = await loadModelFolder(await resolveModel(encoder));
  if (folder.fingerprint === stored.fingerprint) return;
  throw new Error(
    `the index's vectors come from ${stored.model ?? 'another encoder'}, not ${encoder}: train from that encoder, ` +
      `or first re-index with --model ${encoder}`,
  );
}

function assertSameSettings(saved: LsrSettings, settings: LsrSettings): void {
  const differing = (Object.keys(settings) as (keyof LsrSettings)[]).filter((key) => saved[key] !== settings[key]);
  if (differing.length) {
    throw new Error(
      `--resume needs the settings of the interrupted run; these differ: ${differing.map((k) => `${k} (${saved[k]} then, ${settings[k]} now)`).join(', ')}`,
    );
  }
}

function stampOf(manifest: IndexManifest): IndexStamp {
  return { fingerprint: manifest.encoder?.fingerprint ?? '', updatedAt: manifest.updatedAt, passages: manifest.passages };
}

function assertSameIndex(saved: IndexStamp, now: IndexStamp, indexDir: string): void {
  if (saved.fingerprint === now.fingerprint && saved.updatedAt === now.updatedAt && saved.passages === now.passages) return;
  throw new Error(
    `the index at ${indexDir} changed since this run started (${saved.passages} passages updated ${saved.updatedAt} then, ` +
      `${now.passages} updated ${now.updatedAt} now): a resumed run needs the index it was trained on; start a new run with another --output`,
  );
}

/** Files a training run leaves in its output folder; a folder holding any of them is a run. */
const RUN_MARKERS = ['checkpoints', METRICS_FILE, TRAINING_RECORD];

/**
 * A new run writes into an empty or new folder. A folder with an earlier run is replaced only when asked (its model,
 * checkpoints and metrics would otherwise mix with the new run's); a non-empty folder that holds no run is never
 * touched. Returns whether the folder holds a run to replace; throws when the folder may not be used.
 */
export async function checkOutputFolder(output: string, overwrite: boolean): Promise<boolean> {
  const entries = await readdir(output).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return [] as string[];
    throw err;
  });
  if (entries.length === 0) return false;
  if (!entries.some((e) => RUN_MARKERS.includes(e))) {
    throw new Error(`${output} is not empty and holds no training run: choose a new or empty folder for --output`);
  }
  if (!overwrite) {
    throw new Error(`${output} already holds a training run: continue it with --resume, replace it with --overwrite, or choose another --output`);
  }
  return true;
}

/** Whether the local path `inner` is `outer` or inside it (a hub id is never a local path here). */
function isWithin(inner: string, outer: string): boolean {
  const relative = path.relative(path.resolve(outer), path.resolve(inner));
  return existsSync(inner) && relative.split(path.sep)[0] !== '..' && !path.isAbsolute(relative);
}

/** Keeps the metrics lines of steps up to `step` (written atomically; a missing file is fine). */
async function truncateMetrics(file: string, step: number): Promise<void> {
  const text = await readFile(file, 'utf8').catch(() => undefined);
  if (text === undefined) return;
  const kept = text.split('\n').filter((line) => line.trim() !== '' && (JSON.parse(line) as { step: number }).step <= step);
  if (kept.length === text.split('\n').filter((l) => l.trim() !== '').length) return;
  await writeFileAtomic(file, kept.map((l) => `${l}\n`).join(''));
}

function packVectors(vectors: Float32Array[]): Buffer {
  return Buffer.concat(vectors.map((v) => Buffer.from(v.buffer, v.byteOffset, v.byteLength)));
}

function unpackVectors(bytes: Buffer, count: number, dim: number): Float32Array[] {
  if (bytes.length !== count * dim * 4) throw new Error(`the checkpoint's document vectors hold ${bytes.length} bytes, expected ${count} × ${dim} floats: the checkpoint is damaged`);
  const all = new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length));
  return Array.from({ length: count }, (_, i) => all.subarray(i * dim, (i + 1) * dim));
}
