import * as vscode from 'vscode';
import type { IndexStatusResult, SearchParams, StatusParams, TrainingStatus, WireHit } from '../sidecar/server/protocol';
import { catchUpIndex, indexWorkspace, registerCommands } from './commands';
import { Config } from './config';
import { EncoderFallbackNotice } from './encoder-notice';
import { IndexFileWatcher } from './file-watcher';
import { RetrievalHoverProvider } from './hover';
import { InlineCompletionController } from './inline-completion';
import { LmAccess } from './lm-access';
import { registerLmTools } from './lm-tools';
import { describeError, log } from './log';
import { ModelCommands, QUERY_MODEL_KEY } from './model-commands';
import { showWithLog } from './notify';
import { SearchViewProvider } from './search-view';
import { SidecarClient, type IndexOutcome } from './sidecar-client';
import { StatusBar } from './status-bar';
import { TrainingController } from './training';
import { TrainingViewProvider } from './training-view';
import { notice } from './untrusted-text';

/** What `activate` returns: lets other extensions (and the integration tests) use the index. */
export interface ReplugApi {
  whenRunning(): Promise<void>;
  readonly status: StatusParams;
  indexStatus(): Promise<IndexStatusResult>;
  /** Resolves when the job ends, resumed after sidecar crashes if need be. */
  index(roots: string[], rebuild?: boolean): Promise<IndexOutcome>;
  search(params: SearchParams): Promise<WireHit[]>;
  /** The latest training status the sidecar sent. */
  readonly training: TrainingStatus;
  onDidChangeTraining: vscode.Event<TrainingStatus>;
}

let sidecar: SidecarClient | undefined;

export async function activate(context: vscode.ExtensionContext): Promise<ReplugApi> {
  try {
    return await realActivate(context);
  } catch (err) {
    // VS Code does not tell the user when an extension fails to activate.
    log.error(`Activation failed: ${describeError(err)}`);
    void showWithLog('error', notice`Cannot activate REPLUG: ${err}`);
    throw err;
  }
}

async function realActivate(context: vscode.ExtensionContext): Promise<ReplugApi> {
  const config = new Config();
  // The index lives in the extension's workspace storage, never inside the repository.
  const storage = context.storageUri ?? vscode.Uri.joinPath(context.globalStorageUri, 'no-workspace');
  const indexDir = vscode.Uri.joinPath(storage, 'index').fsPath;
  const client = new SidecarClient(context.asAbsolutePath('dist/server.js'), () =>
    config.sidecarOptions(indexDir, context.workspaceState.get<string>(QUERY_MODEL_KEY)),
  );
  sidecar = client;
  const statusBar = new StatusBar(() => vscode.workspace.isTrusted);
  const encoderNotice = new EncoderFallbackNotice();
  const searchView = new SearchViewProvider(context.extensionUri, client, config);
  const lm = new LmAccess(context.secrets, config, context.workspaceState);
  const training = new TrainingController(client, config, lm);
  const trainingView = new TrainingViewProvider(context.extensionUri, training);
  const models = new ModelCommands({ sidecar: client, config, lm, trainingView, workspaceState: context.workspaceState });
  context.subscriptions.push(
    log,
    client,
    statusBar,
    searchView,
    lm,
    training,
    trainingView,
    client.onDidChangeStatus((s) => {
      statusBar.update(s);
      encoderNotice.update(s);
    }),
    vscode.workspace.onDidGrantWorkspaceTrust(() => {
      statusBar.update(client.status);
      client.workspaceTrusted();
    }),
    vscode.window.registerWebviewViewProvider(SearchViewProvider.viewType, searchView),
    vscode.window.registerWebviewViewProvider(TrainingViewProvider.viewType, trainingView),
    vscode.languages.registerHoverProvider({ scheme: 'file' }, new RetrievalHoverProvider(client, config)),
    new IndexFileWatcher(client),
    ...registerLmTools(client),
    new InlineCompletionController(client, config, lm, searchView),
    ...registerCommands({ sidecar: client, config, searchView, training, models, lm }),
    vscode.workspace.onDidChangeConfiguration(async (e) => {
      if (!Config.affectsSidecar(e)) return;
      log.info('Index settings changed: restarting the sidecar and re-indexing');
      await client.restart();
      // A job the restart cut off is sent again to the new sidecar: that is the re-index.
      if (!client.indexing) await indexWorkspace(client, false, vscode.ProgressLocation.Window);
    }),
  );
  statusBar.update(client.status);
  if (!vscode.workspace.isTrusted) log.info('Restricted Mode: REPLUG indexes and searches locally and makes no language-model calls.');
  log.info(`Index directory: ${indexDir}`);

  await client.start();
  void catchUpIndex(client);

  return {
    whenRunning: () => client.whenRunning(),
    get status() {
      return client.status;
    },
    indexStatus: () => client.indexStatus(),
    index: (roots, rebuild = false) => client.index(roots, rebuild, vscode.ProgressLocation.Window),
    search: (params) => client.search(params),
    get training() {
      return training.current;
    },
    onDidChangeTraining: training.onDidChange,
  };
}

export function deactivate(): Thenable<void> | undefined {
  return sidecar?.stop();
}
