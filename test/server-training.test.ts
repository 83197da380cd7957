import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { cp, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { TRAINING_RECORD } from '../sidecar/lsr/lsr-trainer';
import { LmServer } from '../sidecar/lm/serve';
import {
  CancelTrainingRequest,
  CompareRequest,
  EvaluateRequest,
  IndexRequest,
  ListModelsRequest,
  SearchRequest,
  StartLmRequest,
  StopLmRequest,
  TrainingStatusRequest,
  TrainRequest,
  UseModelRequest,
  type TrainParams,
  type TrainingStatus,
} from '../sidecar/server/protocol';
import { makeTinyBert } from '../scripts/make-tiny-bert';
import { CopyLm } from './fixtures/lm/copy-lm';
import { startScriptedLm } from './fixtures/lm/scripted-lm';
import { startSidecar, type Sidecar } from './helpers/sidecar-process';

const REPO = resolve(__dirname, '..');

/** Resolves with the first training status that satisfies `done`, waiting for notifications as they come. */
async function statusWhere(sidecar: Sidecar, done: (s: TrainingStatus) => boolean, timeoutMs = 60_000): Promise<TrainingStatus> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const found = sidecar.trainingStatuses.find(done);
    if (found) return found;
    if (Date.now() > deadline) throw new Error(`no such training status; last: ${JSON.stringify(sidecar.trainingStatuses.at(-1))}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Starts a run once the previous one's worker has exited (its last status comes a moment before). */
async function startWhenIdle(sidecar: Sidecar, params: TrainParams) {
  for (let attempt = 0; ; attempt++) {
    try {
      return await sidecar.connection.sendRequest(TrainRequest.type, params);
    } catch (err) {
      if (!/still running/.test((err as Error).message) || attempt > 100) throw err;
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}

describe('sidecar training, evaluation and models over JSON-RPC', () => {
  let dir: string;
  let root: string;
  let lm: LmServer;
  let lmUrl: string;
  let sidecar: Sidecar;
  let trained: string;
  /** A tiny run: 5 steps of 2 queries, 4 passages each, every indexed file a query file. */
  const shortRun = (): TrainParams => ({
    lm: { baseUrl: lmUrl, model: 'copy-lm', concurrency: 4 },
    settings: { steps: 5, batchSize: 2, k: 4, checkpointEvery: 100 },
    queries: { trainFraction: 1, evalFraction: 0, perFile: 2 },
    device: 'cpu',
  });

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'replug-server-train-'));
    root = join(dir, 'ws');
    // Real code as the corpus: the engine's own LM and evaluation modules.
    await cp(join(REPO, 'sidecar/lm'), join(root, 'lm'), { recursive: true, filter: (src) => !src.includes('llama2c') });
    await cp(join(REPO, 'sidecar/eval'), join(root, 'eval'), { recursive: true });
    const model = await makeTinyBert(join(dir, 'model'), { layers: 2, hidden: 64, heads: 4, ffn: 128, vocab: 'real', maxPos: 256 });
    lm = new LmServer(new CopyLm('copy-lm', 16384));
    lmUrl = await lm.listen();
    sidecar = await startSidecar({ indexDir: join(dir, 'index'), encoderModel: model, encoderDevice: 'cpu' });
    assert.equal(sidecar.initError, undefined);
    const indexed = await sidecar.connection.sendRequest(IndexRequest.type, { roots: [root] });
    assert.ok(!indexed.cancelled && indexed.passagesEmbedded > 0);
  });

  after(async () => {
    await sidecar?.stop();
    await lm?.close();
    await rm(dir, { recursive: true, force: true });
  });

  test('a short run reports every step as status and work-done progress, writes a model, and search answers meanwhile', async () => {
    const started = await sidecar.connection.sendRequest(TrainRequest.type, shortRun());
    assert.ok(started.queries > 0);
    assert.match(started.runId, /^lsr-/);
    const latencies: number[] = [];
    let answeredWhileRunning = 0;
    while (!['done', 'failed', 'cancelled'].includes(sidecar.trainingStatuses.at(-1)?.state ?? '')) {
      const t = performance.now();
      const hits = await sidecar.connection.sendRequest(SearchRequest.type, { query: 'retry with exponential backoff', k: 3 });
      latencies.push(performance.now() - t);
      assert.equal(hits.length, 3);
      if (sidecar.trainingStatuses.at(-1)?.state === 'running') answeredWhileRunning++;
    }
    const last = sidecar.trainingStatuses.at(-1)!;
    assert.equal(last.state, 'done', last.message);
    assert.equal(last.step, 5);
    trained = started.output;
    latencies.sort((a, b) => a - b);
    console.log(
      `search during training: ${latencies.length} searches (${answeredWhileRunning} while running), ` +
        `median ${latencies[Math.floor(latencies.length / 2)]?.toFixed(1)} ms, max ${latencies.at(-1)?.toFixed(1)} ms`,
    );
    assert.ok(answeredWhileRunning > 0, 'searches were answered while the worker trained');

    const steps = sidecar.trainingStatuses.filter((s) => s.state === 'running' && s.loss !== undefined).map((s) => s.step);
    assert.deepEqual([...new Set(steps)], [1, 2, 3, 4, 5]);
    assert.ok(sidecar.trainingStatuses.every((s) => s.loss === undefined || (Number.isFinite(s.loss) && s.loss >= 0)));
    const kinds = sidecar.progress.map((p) => p.value.kind);
    assert.equal(kinds[0], 'begin');
    assert.ok(kinds.includes('report'));
    assert.equal(kinds.at(-1), 'end');
    assert.ok(existsSync(join(trained, TRAINING_RECORD)));
    assert.deepEqual(await sidecar.connection.sendRequest(TrainingStatusRequest.type), last);

    const { models } = await sidecar.connection.sendRequest(ListModelsRequest.type);
    const listed = models.find((m) => m.path === trained);
    assert.equal(listed?.trained, true);
    assert.equal(listed?.fitsIndex, true);
    assert.equal(listed?.step, 5);
  });

  test('evaluate returns base and tuned metrics on held-out queries; compare lists both top-k', async () => {
    const report = await sidecar.connection.sendRequest(EvaluateRequest.type, {
      lm: { baseUrl: lmUrl, model: 'copy-lm' },
      tuned: trained,
      k: 3,
      ensembleK: 3,
      maxQueries: 4,
      queries: { trainFraction: 0, evalFraction: 1, perFile: 1 },
    });
    assert.equal(report.queries, 4);
    assert.deepEqual(report.retrievers.map((r) => r.name), ['base', 'tuned']);
    for (const r of report.retrievers) {
      assert.ok(r.teacher.ndcg >= 0 && r.teacher.ndcg <= 1);
      assert.ok(r.bitsPerByte > 0 && Number.isFinite(r.bitsPerByte));
    }
    assert.ok(report.noRetrievalBitsPerByte > 0);
    const [base, tuned] = report.retrievers;
    assert.equal(base.ndcgGain, undefined, 'the first retriever is the reference');
    assert.ok(Math.abs(tuned.ndcgGain!.mean - (tuned.teacher.ndcg - base.teacher.ndcg)) < 1e-12);
    assert.ok(tuned.ndcgGain!.stdErr >= 0);

    const compared = await sidecar.connection.sendRequest(CompareRequest.type, { query: 'parse the models list', tuned: trained, k: 3 });
    assert.equal(compared.base.length, 3);
    assert.equal(compared.tuned.length, 3);
    assert.ok(compared.tuned.every((h) => h.path.startsWith(root) && h.text.length > 0));
  });

  test('use model switches searches to the tuned query encoder and back', async () => {
    const used = await sidecar.connection.sendRequest(UseModelRequest.type, { model: trained });
    assert.equal(used.active, trained);
    const hits = await sidecar.connection.sendRequest(SearchRequest.type, { query: 'backoff delay', k: 2, mode: 'dense' });
    assert.equal(hits.length, 2);
    const back = await sidecar.connection.sendRequest(UseModelRequest.type, {});
    assert.equal(back.active, undefined);
    await assert.rejects(
      sidecar.connection.sendRequest(UseModelRequest.type, { model: join(dir, 'model') }),
      /not a finished LSR model/,
    );
  });

  test('stopping a run mid-way saves a resumable checkpoint instead of a model', async () => {
    const long = shortRun();
    long.settings = { ...long.settings, steps: 10_000 };
    const before = sidecar.trainingStatuses.length;
    const started = await sidecar.connection.sendRequest(TrainRequest.type, long);
    await statusWhere(sidecar, (s) => sidecar.trainingStatuses.indexOf(s) >= before && s.state === 'running' && s.step >= 1);
    const stopped = await sidecar.connection.sendRequest(CancelTrainingRequest.type);
    assert.equal(stopped.state, 'cancelled');
    assert.ok(stopped.step >= 1 && stopped.step < 10_000);
    assert.equal(stopped.checkpointStep, stopped.step);
    assert.ok(existsSync(join(started.output, 'checkpoints')));
    assert.ok(!existsSync(join(started.output, TRAINING_RECORD)));
    const { models } = await sidecar.connection.sendRequest(ListModelsRequest.type);
    assert.equal(models.find((m) => m.path === started.output)?.trained, false);
  });

  test('a second run while one trains is refused with what to do', async () => {
    const long = shortRun();
    long.settings = { ...long.settings, steps: 10_000 };
    await sidecar.connection.sendRequest(TrainRequest.type, long);
    try {
      await assert.rejects(sidecar.connection.sendRequest(TrainRequest.type, shortRun()), /still running: stop it first/);
    } finally {
      await sidecar.connection.sendRequest(CancelTrainingRequest.type);
    }
  });

  test('a run that names no device trains where the encoder runs (replugCode.encoder.device): no CUDA attempt on a CPU setting', async () => {
    const { device: _device, ...params } = shortRun();
    const before = { statuses: sidecar.trainingStatuses.length, stderr: sidecar.stderr.length };
    await startWhenIdle(sidecar, params);
    const end = await statusWhere(sidecar, (s) => sidecar.trainingStatuses.indexOf(s) >= before.statuses && ['done', 'failed'].includes(s.state));
    assert.equal(end.state, 'done', end.message);
    const stderr = sidecar.stderr.slice(before.stderr).join('');
    assert.doesNotMatch(stderr, /onnxruntime|providers_(shared|cuda)|CUDA/i, 'ONNX Runtime tried CUDA although the encoder runs on the CPU');
  });

  test('a run the LM fails says which endpoint and model, and what to check', async () => {
    const broken = await startScriptedLm({ status: 404, body: 'nope' });
    try {
      const params = { ...shortRun(), lm: { baseUrl: broken.url, model: 'no-such-model' } };
      const before = sidecar.trainingStatuses.length;
      await startWhenIdle(sidecar, params).catch(() => undefined);
      const failed = await statusWhere(sidecar, (s) => sidecar.trainingStatuses.indexOf(s) >= before && s.state === 'failed');
      assert.ok(broken.seen.length > 0, 'the endpoint was asked');
      assert.ok(failed.message?.includes(broken.url), failed.message);
      assert.match(failed.message ?? '', /model "no-such-model"/);
      assert.match(failed.message ?? '', /nope/);
      // The 404 came from GET /models, so the advice is about the base URL first.
      assert.match(failed.message ?? '', /Check that replugCode\.lm\.baseUrl is the server's OpenAI base URL.* replugCode\.lm\.model/);

      // Evaluation fails at the teacher's probe, before any query is scored: the same endpoint, model and advice.
      await assert.rejects(
        sidecar.connection.sendRequest(EvaluateRequest.type, { lm: params.lm, maxQueries: 2, queries: { trainFraction: 0, evalFraction: 1, perFile: 1 } }),
        (err: Error) => err.message.includes(broken.url) && /model "no-such-model".*Check that replugCode\.lm\.baseUrl/.test(err.message),
      );
    } finally {
      await broken.close();
    }
  });

  test('starts the configured LM server command, reports its models, and stops it', async () => {
    const status = await sidecar.connection.sendRequest(StartLmRequest.type, {
      command: [process.execPath, '--import', 'tsx', 'test/fixtures/lm/serve-copy-lm.ts', '--port', '{port}'],
      cwd: REPO,
    });
    assert.equal(status.running, true);
    assert.deepEqual(status.models, ['copy-lm']);
    const models = (await (await fetch(`${status.baseUrl}/models`)).json()) as { data: { id: string }[] };
    assert.equal(models.data[0]?.id, 'copy-lm');
    const stopped = await sidecar.connection.sendRequest(StopLmRequest.type);
    assert.equal(stopped.running, false);
    await assert.rejects(fetch(`${status.baseUrl}/models`));
  });
});

describe('sidecar in an untrusted workspace', () => {
  test('refuses training, evaluation and LM servers, saying why', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'replug-server-untrusted-'));
    const sidecar = await startSidecar({ indexDir: join(dir, 'index'), encoderModel: join(dir, 'model'), workspaceTrusted: false });
    try {
      const lm = { baseUrl: 'http://127.0.0.1:9/v1', model: 'm' };
      await assert.rejects(sidecar.connection.sendRequest(TrainRequest.type, { lm }), /Restricted Mode/);
      await assert.rejects(sidecar.connection.sendRequest(EvaluateRequest.type, { lm }), /Restricted Mode/);
      await assert.rejects(sidecar.connection.sendRequest(StartLmRequest.type, { command: ['true'] }), /Restricted Mode/);
    } finally {
      await sidecar.stop();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
