/**
 * The sidecar's JSON-RPC entry point (bundled to dist/server.js). The extension starts it over node IPC;
 * `--stdio` works too (tests, other editors). All engine work happens in IndexService; this file only maps
 * protocol messages onto it.
 */
import { dirname, join } from 'node:path';
import { createConnection, ResponseError, ErrorCodes, LSPErrorCodes } from 'vscode-languageserver/node';
import { noticeOnce } from '../encoder/cuda-provider';
import { disableOrtTelemetry } from '../encoder/ort-environment';
import { loadEncoder } from '../encoder/ort-encoder';
import { QUERY_TOWER_PRECISION, type PrecisionChoice } from '../encoder/precision';
import type { IndexOptions } from '../index/workspace-index';
import { CompletionService } from './complete-service';
import { EvalService } from './eval-service';
import { IndexService, errorMessage } from './index-service';
import { ManagedLm } from './lm-service';
import { assertQueryTowerFor, listModels } from './model-catalog';
import {
  CancelTrainingRequest,
  CompareRequest,
  CompleteRequest,
  EvaluateRequest,
  ExplainFileRequest,
  IndexRequest,
  IndexStatusRequest,
  ListModelsRequest,
  RemoveFileRequest,
  SearchRequest,
  StartLmRequest,
  StatusNotification,
  StopLmRequest,
  TrainingStatusNotification,
  TrainingStatusRequest,
  TrainRequest,
  UpdateFileRequest,
  UseModelRequest,
  WorkspaceTrustedNotification,
  type InitializationOptions,
  type ModelsResult,
} from './protocol';
import { TrainingProgress } from './training-progress';
import { TrainingService } from './training-service';

// Before any ONNX Runtime session is created (encoders, and training in its worker thread: the variable is per process).
disableOrtTelemetry();
const connection = createConnection();
/** Skipped files listed in the log after an index job; the rest are counted. */
const SKIPPED_LOG_LINES = 200;
let service: IndexService | undefined;

/** The LM-facing services, created with the index service in `initialize`. */
interface LmServices {
  indexDir: string;
  modelsDir: string;
  encoderDevice: InitializationOptions['encoderDevice'];
  training: TrainingService;
  evaluation: EvalService;
  lm: ManagedLm;
  completions: CompletionService;
}
let lmServices: LmServices | undefined;
/** Restricted Mode: no request may reach a language model (the extension says when the user grants trust). */
let trusted = true;

// A crash in a background job must reach the extension's log, not vanish with the process.
process.on('uncaughtException', (err) => connection.console.error(`Uncaught exception: ${err.stack ?? err}`));
process.on('unhandledRejection', (err) => connection.console.error(`Unhandled rejection: ${errorStack(err)}`));

connection.onInitialize((params) => {
  const init = params.initializationOptions as Partial<InitializationOptions> | undefined;
  if (!init?.indexDir) {
    throw new ResponseError(
      ErrorCodes.InvalidParams,
      'initializationOptions.indexDir is required: pass the directory where the sidecar may keep its index.',
    );
  }
  service = new IndexService({
    indexDir: init.indexDir,
    indexOptions: indexOptions(init),
    encoder: init.encoderModel ? { model: init.encoderModel, load: () => openEncoder(init.encoderModel!, init.encoderDevice, init.encoderPrecision) } : undefined,
    onStatus: (status) => void connection.sendNotification(StatusNotification.type, status),
  });
  const indexService = service;
  trusted = init.workspaceTrusted !== false;
  const modelsDir = init.modelsDir ?? join(dirname(init.indexDir), 'models');
  const progress = new TrainingProgress(
    () => connection.window.createWorkDoneProgress(),
    () => void lmServices?.training.cancel(),
  );
  lmServices = {
    indexDir: init.indexDir,
    modelsDir,
    encoderDevice: init.encoderDevice,
    training: new TrainingService({
      indexDir: init.indexDir,
      modelsDir,
      baseModel: init.encoderModel,
      device: init.encoderDevice,
      trusted: () => trusted,
      encoderProblem: () => indexService.encoderProblem,
      onStatus: (status) => {
        progress.update(status);
        void connection.sendNotification(TrainingStatusNotification.type, status);
      },
    }),
    evaluation: new EvalService({
      indexDir: init.indexDir,
      baseModel: init.encoderModel,
      device: init.encoderDevice,
      baseEncoder: () => indexService.baseEncoder(),
      encoderProblem: () => indexService.encoderProblem,
    }),
    lm: new ManagedLm((line) => connection.console.log(`[lm] ${line}`)),
    completions: new CompletionService(indexService),
  };
  if (init.queryModel) void useModel(init.queryModel).catch((err) => connection.console.warn(`Searching with the base encoder: ${errorMessage(err)}`));
  connection.console.info(`Index directory: ${init.indexDir}; trained models: ${modelsDir}`);
  return { capabilities: {}, serverInfo: { name: 'replug-code sidecar' } };
});

connection.onInitialized(() => {
  // Open the index (and load the encoder) now, so the status bar shows an existing index's size, or an encoder
  // that cannot be loaded, at once.
  void ready().status().then(
    () => ready().publishStatus(),
    (err) => connection.console.error(errorMessage(err)),
  );
});

connection.onRequest(IndexStatusRequest.type, () => ready().status());

connection.onRequest(IndexRequest.type, async (params, token) => {
  if (!Array.isArray(params.roots) || params.roots.length === 0) {
    throw new ResponseError(ErrorCodes.InvalidParams, 'replug/index needs at least one root folder in `roots`.');
  }
  const progress = connection.languages.attachWorkDoneProgress(params);
  const abort = new AbortController();
  token.onCancellationRequested(() => abort.abort());
  progress.begin(params.rebuild ? 'Rebuilding index' : 'Indexing', 0, 'Scanning files…', true);
  const started = Date.now();
  try {
    const result = await ready().index(params.roots, {
      rebuild: params.rebuild,
      signal: abort.signal,
      onSkipped: (files) => {
        if (files.length) connection.console.info(skippedSection(files));
      },
      onProgress: (p) => {
        if (p.phase === 'embed' && p.passagesToEmbed > 0) {
          const pct = Math.floor((100 * p.passagesEmbedded) / p.passagesToEmbed);
          progress.report(pct, `Embedding ${p.passagesEmbedded}/${p.passagesToEmbed} passages`);
        } else {
          progress.report(p.phase === 'save' ? 'Saving…' : `Scanning: ${p.files} files`);
        }
      },
    });
    connection.console.info(
      result.cancelled
        ? `Index job cancelled after ${((Date.now() - started) / 1000).toFixed(1)} s`
        : `Indexed ${result.files} files (${result.filesChanged} changed, ${result.filesRemoved} removed), ` +
            `${result.passages} passages, ${result.passagesEmbedded} embedded, in ${result.seconds.toFixed(1)} s` +
            (result.rebuilt ? ` (rebuilt from scratch: ${result.rebuilt})` : '') +
            (result.resumedRebuild ? `; continued from the rebuild's checkpoint of ${result.resumedRebuild.files} files` : ''),
    );
    return result;
  } catch (err) {
    connection.console.error(`Index job failed: ${errorStack(err)}`);
    // The editor says what failed ("indexing failed: …"); the message is only the reason.
    throw new ResponseError(ErrorCodes.InternalError, errorMessage(err));
  } finally {
    progress.done();
  }
});

connection.onRequest(UpdateFileRequest.type, ({ path }) => ready().updateFile(path));
connection.onRequest(ExplainFileRequest.type, ({ path }) => failAsRequest(() => ready().explainFile(path)));
connection.onRequest(RemoveFileRequest.type, ({ path }) => ready().removeFile(path));
connection.onRequest(SearchRequest.type, (params) => {
  if (typeof params.query !== 'string') {
    throw new ResponseError(ErrorCodes.InvalidParams, 'replug/search needs a string `query`.');
  }
  return ready().search(params);
});

connection.onRequest(TrainRequest.type, (params) => failAsRequest(() => lm().training.start(params)));
connection.onRequest(TrainingStatusRequest.type, () => lm().training.current());
connection.onRequest(CancelTrainingRequest.type, () => lm().training.cancel());

connection.onRequest(EvaluateRequest.type, (params) =>
  failAsRequest(async () => {
    needsTrust('Evaluation scores passages with the language model');
    const progress = connection.languages.attachWorkDoneProgress(params);
    progress.begin('Evaluating retrievers', 0, 'Loading queries…', false);
    try {
      return await lm().evaluation.evaluate(
        params,
        (done, total) => progress.report(Math.floor((100 * done) / total), `${done}/${total} queries`),
        (line) => connection.console.info(`Evaluation: ${line}`),
      );
    } finally {
      progress.done();
    }
  }),
);

connection.onRequest(CompareRequest.type, (params) =>
  failAsRequest(() => {
    if (typeof params.query !== 'string' || !params.query.trim() || !params.tuned) {
      throw new ResponseError(ErrorCodes.InvalidParams, 'replug/compare needs a `query` and the `tuned` model folder.');
    }
    return lm().evaluation.compare(params);
  }),
);

connection.onRequest(CompleteRequest.type, (params, token) =>
  failAsRequest(async () => {
    needsTrust('Completion calls the language model');
    const abort = new AbortController();
    const listener = token.onCancellationRequested(() => abort.abort(new ResponseError(LSPErrorCodes.RequestCancelled, 'completion cancelled')));
    try {
      return await lm().completions.complete(params, abort.signal);
    } finally {
      listener.dispose();
    }
  }),
);

connection.onRequest(ListModelsRequest.type, () => failAsRequest(models));
connection.onRequest(UseModelRequest.type, ({ model }) =>
  failAsRequest(async () => {
    await useModel(model);
    return models();
  }),
);

connection.onRequest(StartLmRequest.type, (params) =>
  failAsRequest(() => {
    needsTrust('Starting an LM server runs a command from the settings');
    return lm().lm.start(params);
  }),
);
connection.onRequest(StopLmRequest.type, () => failAsRequest(() => lm().lm.stop()));
connection.onNotification(WorkspaceTrustedNotification.type, () => {
  trusted = true;
});

connection.onShutdown(async () => {
  // Training first: its worker checkpoints and needs the index directory intact.
  await lmServices?.training.close();
  await lmServices?.lm.stop();
  await lmServices?.evaluation.close();
  await service?.close();
});

connection.listen();

function ready(): IndexService {
  if (!service) throw new ResponseError(ErrorCodes.ServerNotInitialized, 'The sidecar has not been initialized yet.');
  return service;
}

function lm(): LmServices {
  if (!lmServices) throw new ResponseError(ErrorCodes.ServerNotInitialized, 'The sidecar has not been initialized yet.');
  return lmServices;
}

function needsTrust(what: string): void {
  if (!trusted) throw new Error(`${what}, which REPLUG never does in Restricted Mode: trust the workspace first.`);
}

async function models(): Promise<ModelsResult> {
  const { modelsDir, indexDir } = lm();
  return { models: await listModels(modelsDir, indexDir), active: ready().queryModel };
}

/** Switches the query encoder of searches to a tuned query tower, or back to the index's own encoder. */
async function useModel(model: string | undefined): Promise<void> {
  const { indexDir, encoderDevice } = lm();
  if (model) await assertQueryTowerFor(model, indexDir);
  await ready().useQueryModel(model, (m) => openEncoder(m, encoderDevice, QUERY_TOWER_PRECISION));
  connection.console.info(model ? `Searching with the tuned query encoder ${model}` : 'Searching with the base encoder');
}

/** Engine errors become failed requests whose message the editor shows as it is. */
async function failAsRequest<T>(work: () => T | Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (err) {
    if (err instanceof ResponseError) throw err;
    throw new ResponseError(LSPErrorCodes.RequestFailed, errorMessage(err));
  }
}

function indexOptions(init: Partial<InitializationOptions>): Omit<IndexOptions, 'encoder'> {
  // Unset keys are left out rather than passed as undefined, so the engine's defaults apply.
  const options: Omit<IndexOptions, 'encoder'> = {};
  if (init.chunking) options.chunking = init.chunking;
  if (init.include?.length) options.include = init.include;
  if (init.exclude?.length) options.exclude = init.exclude;
  if (init.keep?.length) options.keep = init.keep;
  if (init.encoderModel) options.encoderSpec = init.encoderModel;
  return options;
}

async function openEncoder(model: string, device: InitializationOptions['encoderDevice'], precision: PrecisionChoice | undefined) {
  connection.console.info(`Loading encoder ${model} (device ${device ?? 'auto'}, precision ${precision ?? 'auto'})`);
  const encoder = await loadEncoder({ model, device, precision });
  noticeOnce(encoder.fallbackReason, (line) => connection.console.warn(line));
  connection.console.info(`Encoder ready on ${encoder.provider} at ${encoder.precision}: dim ${encoder.dim}, max ${encoder.maxTokens} tokens`);
  return encoder;
}

/** Lines of the log naming the files an index job left out and why; long lists are cut. */
function skippedSection(files: { path: string; reason: string; detail?: string }[]): string {
  const shown = files.slice(0, SKIPPED_LOG_LINES).map((f) => `  ${f.reason}: ${f.path}${f.detail ? ` (${f.detail})` : ''}`);
  const more = files.length > shown.length ? [`  … and ${files.length - shown.length} more`] : [];
  return [`Skipped ${files.length} file${files.length === 1 ? '' : 's'} (REPLUG: Why Isn't This File Indexed? explains any file):`, ...shown, ...more].join('\n');
}

function errorStack(err: unknown): string {
  return err instanceof Error ? (err.stack ?? err.message) : String(err);
}
