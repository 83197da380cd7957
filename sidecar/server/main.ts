/**
 * The sidecar's JSON-RPC entry point (bundled to dist/server.js). The extension starts it over node IPC;
 * `--stdio` works too (tests, other editors). All engine work happens in IndexService; this file only maps
 * protocol messages onto it.
 */
import { createConnection, ResponseError, ErrorCodes } from 'vscode-languageserver/node';
import { loadEncoder } from '../encoder/ort-encoder';
import type { IndexOptions } from '../index/workspace-index';
import { IndexService, errorMessage } from './index-service';
import {
  IndexRequest,
  IndexStatusRequest,
  RemoveFileRequest,
  SearchRequest,
  StatusNotification,
  UpdateFileRequest,
  type InitializationOptions,
} from './protocol';

const connection = createConnection();
let service: IndexService | undefined;

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
    loadEncoder: init.encoderModel ? () => openEncoder(init.encoderModel!, init.encoderDevice) : undefined,
    onStatus: (status) => void connection.sendNotification(StatusNotification.type, status),
  });
  connection.console.info(`Index directory: ${init.indexDir}`);
  return { capabilities: {}, serverInfo: { name: 'replug-code sidecar' } };
});

connection.onInitialized(() => {
  // Publish the starting state (files/passages of an existing index) so the status bar is right at once.
  void ready().status().then(
    (s) =>
      connection.sendNotification(StatusNotification.type, {
        health: s.passages ? 'ok' : 'warning',
        busy: s.busy,
        message: s.passages ? `${s.files} files, ${s.passages} passages` : 'Not indexed yet',
        files: s.files,
        passages: s.passages,
      }),
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
            (result.rebuilt ? ` (rebuilt from scratch: ${result.rebuilt})` : ''),
    );
    return result;
  } catch (err) {
    connection.console.error(`Index job failed: ${errorStack(err)}`);
    throw new ResponseError(ErrorCodes.InternalError, `Indexing failed: ${errorMessage(err)}`);
  } finally {
    progress.done();
  }
});

connection.onRequest(UpdateFileRequest.type, ({ path }) => ready().updateFile(path));
connection.onRequest(RemoveFileRequest.type, ({ path }) => ready().removeFile(path));
connection.onRequest(SearchRequest.type, (params) => {
  if (typeof params.query !== 'string') {
    throw new ResponseError(ErrorCodes.InvalidParams, 'replug/search needs a string `query`.');
  }
  return ready().search(params);
});

connection.onShutdown(() => service?.close());

connection.listen();

function ready(): IndexService {
  if (!service) throw new ResponseError(ErrorCodes.ServerNotInitialized, 'The sidecar has not been initialized yet.');
  return service;
}

function indexOptions(init: Partial<InitializationOptions>): Omit<IndexOptions, 'encoder'> {
  // Unset keys are left out rather than passed as undefined, so the engine's defaults apply.
  const options: Omit<IndexOptions, 'encoder'> = {};
  if (init.chunking) options.chunking = init.chunking;
  if (init.include?.length) options.include = init.include;
  if (init.exclude?.length) options.exclude = init.exclude;
  if (init.encoderModel) options.encoderSpec = init.encoderModel;
  return options;
}

async function openEncoder(model: string, device: InitializationOptions['encoderDevice']) {
  connection.console.info(`Loading encoder ${model} (${device ?? 'auto'})`);
  const encoder = await loadEncoder({ model, device });
  connection.console.info(`Encoder ready: dim ${encoder.dim}, max ${encoder.maxTokens} tokens`);
  return encoder;
}

function errorStack(err: unknown): string {
  return err instanceof Error ? (err.stack ?? err.message) : String(err);
}
