import * as vscode from 'vscode';
import {
  CloseAction,
  ErrorAction,
  LanguageClient,
  RevealOutputChannelOn,
  State,
  TransportKind,
  WorkDoneProgress,
  type ErrorHandler,
  type LanguageClientOptions,
  type ServerOptions,
} from 'vscode-languageclient/node';
import {
  CancelTrainingRequest,
  CompareRequest,
  EvaluateRequest,
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
  type CompareParams,
  type CompareResult,
  type EvalReport,
  type EvaluateParams,
  type IndexResult,
  type IndexStatusResult,
  type InitializationOptions,
  type LmServerStatus,
  type ModelsResult,
  type SearchParams,
  type StartLmParams,
  type StatusParams,
  type TrainingStatus,
  type TrainParams,
  type TrainStarted,
  type WireHit,
} from '../sidecar/server/protocol';
import { log } from './log';
import { showWithLog } from './notify';

/** Crashes tolerated within CRASH_WINDOW_MS before the sidecar is left stopped (a crash loop helps nobody). */
const MAX_RESTARTS = 3;
const CRASH_WINDOW_MS = 3 * 60_000;

/**
 * Owns the sidecar process: starts it, restarts it after a crash (bounded), and exposes the protocol as typed
 * methods. Status notifications and client state changes are re-published as one `onDidChangeStatus` event.
 */
export class SidecarClient implements vscode.Disposable {
  private client: LanguageClient | undefined;
  private crashes: number[] = [];
  private readonly statusEmitter = new vscode.EventEmitter<StatusParams>();
  private lastStatus: StatusParams = { health: 'ok', busy: true, message: 'Starting…' };
  private readyWaiters: (() => void)[] = [];
  private readonly trainingEmitter = new vscode.EventEmitter<TrainingStatus>();
  /** Fires on every status change (sidecar notification, start, stop, crash). */
  readonly onDidChangeStatus = this.statusEmitter.event;
  /** Fires after every training step and state change. */
  readonly onDidChangeTraining = this.trainingEmitter.event;

  constructor(
    private readonly serverModule: string,
    private readonly options: () => InitializationOptions,
  ) {}

  get status(): StatusParams {
    return this.lastStatus;
  }

  get running(): boolean {
    return this.client?.state === State.Running;
  }

  async start(): Promise<void> {
    const client = this.createClient();
    this.client = client;
    client.onDidChangeState(({ newState }) => {
      log.info(`Sidecar ${State[newState].toLowerCase()}`);
      if (newState === State.Running) for (const resolve of this.readyWaiters.splice(0)) resolve();
      if (newState === State.Stopped && this.client === client) {
        this.setStatus({ health: 'error', busy: false, message: 'Sidecar stopped' });
      }
    });
    client.onNotification(StatusNotification.type, (status) => this.setStatus(status));
    client.onNotification(TrainingStatusNotification.type, (status) => this.trainingEmitter.fire(status));
    this.setStatus({ health: 'ok', busy: true, message: 'Starting…' });
    await client.start();
  }

  /** Resolves once a sidecar is running (after start or a restart). */
  whenRunning(): Promise<void> {
    return this.running ? Promise.resolve() : new Promise((resolve) => this.readyWaiters.push(resolve));
  }

  async restart(): Promise<void> {
    await this.stop();
    this.crashes = [];
    await this.start();
  }

  async stop(): Promise<void> {
    const client = this.client;
    this.client = undefined;
    if (client?.isRunning()) await client.stop();
  }

  indexStatus(): Promise<IndexStatusResult> {
    return this.ready().sendRequest(IndexStatusRequest.type);
  }

  search(params: SearchParams, token?: vscode.CancellationToken): Promise<WireHit[]> {
    return this.ready().sendRequest(SearchRequest.type, params, token);
  }

  updateFile(path: string): Promise<void> {
    return this.ready().sendRequest(UpdateFileRequest.type, { path });
  }

  removeFile(path: string): Promise<void> {
    return this.ready().sendRequest(RemoveFileRequest.type, { path });
  }

  train(params: TrainParams): Promise<TrainStarted> {
    return this.ready().sendRequest(TrainRequest.type, params);
  }

  trainingStatus(): Promise<TrainingStatus> {
    return this.ready().sendRequest(TrainingStatusRequest.type);
  }

  /** Resolves once the run has stopped (after its checkpoint is saved). */
  cancelTraining(): Promise<TrainingStatus> {
    return this.ready().sendRequest(CancelTrainingRequest.type);
  }

  /** Evaluates with the sidecar's work-done progress shown as a notification. */
  evaluate(params: EvaluateParams): Promise<EvalReport> {
    const client = this.ready();
    return Promise.resolve(
      vscode.window.withProgress({ location: vscode.ProgressLocation.Notification, title: 'REPLUG: Evaluating' }, async (progress) => {
        const workDoneToken = `replug-eval-${Date.now()}-${Math.random().toString(36).slice(2)}`;
        const listener = client.onProgress(WorkDoneProgress.type, workDoneToken, (value) => {
          if (value.kind !== 'end') progress.report({ message: value.message });
        });
        try {
          return await client.sendRequest(EvaluateRequest.type, { ...params, workDoneToken });
        } finally {
          listener.dispose();
        }
      }),
    );
  }

  compare(params: CompareParams): Promise<CompareResult> {
    return this.ready().sendRequest(CompareRequest.type, params);
  }

  listModels(): Promise<ModelsResult> {
    return this.ready().sendRequest(ListModelsRequest.type);
  }

  useModel(model: string | undefined): Promise<ModelsResult> {
    return this.ready().sendRequest(UseModelRequest.type, { model });
  }

  startLm(params: StartLmParams): Promise<LmServerStatus> {
    return this.ready().sendRequest(StartLmRequest.type, params);
  }

  stopLm(): Promise<LmServerStatus> {
    return this.ready().sendRequest(StopLmRequest.type);
  }

  workspaceTrusted(): void {
    if (this.running) void this.client!.sendNotification(WorkspaceTrustedNotification.type);
  }

  /**
   * Runs an index job with its work-done progress shown at `location`; cancelling the progress cancels the job.
   * Resolves `{ cancelled: true }` when cancelled.
   */
  index(roots: string[], rebuild: boolean, location: vscode.ProgressLocation): Promise<IndexResult> {
    const client = this.ready();
    const title = rebuild ? 'REPLUG: Rebuilding index' : 'REPLUG: Indexing';
    return Promise.resolve(
      vscode.window.withProgress({ location, title, cancellable: true }, async (progress, token) => {
        const workDoneToken = `replug-index-${Date.now()}-${Math.random().toString(36).slice(2)}`;
        let reported = 0;
        const listener = client.onProgress(WorkDoneProgress.type, workDoneToken, (value) => {
          if (value.kind === 'end') return;
          const increment = value.percentage !== undefined ? Math.max(0, value.percentage - reported) : undefined;
          reported += increment ?? 0;
          progress.report({ message: value.message, increment });
        });
        try {
          return await client.sendRequest(IndexRequest.type, { roots, rebuild, workDoneToken }, token);
        } catch (err) {
          if (token.isCancellationRequested) return { cancelled: true as const };
          throw err;
        } finally {
          listener.dispose();
        }
      }),
    );
  }

  dispose(): void {
    void this.stop();
    this.statusEmitter.dispose();
    this.trainingEmitter.dispose();
  }

  private ready(): LanguageClient {
    if (!this.client || !this.running) throw new Error('The REPLUG sidecar is not running. Run "REPLUG: Show Log" to see why.');
    return this.client;
  }

  private setStatus(status: StatusParams): void {
    this.lastStatus = status;
    this.statusEmitter.fire(status);
  }

  private createClient(): LanguageClient {
    // The sidecar runs on the extension host's own Node (process.execPath) so native modules match its ABI.
    const serverOptions: ServerOptions = {
      run: { module: this.serverModule, transport: TransportKind.ipc },
      debug: { module: this.serverModule, transport: TransportKind.ipc, options: { execArgv: ['--inspect=6019'] } },
    };
    const clientOptions: LanguageClientOptions = {
      // No document selector: the sidecar offers no standard language features, only `replug/` requests.
      documentSelector: [],
      outputChannel: log,
      revealOutputChannelOn: RevealOutputChannelOn.Never,
      initializationOptions: this.options(),
      errorHandler: this.errorHandler(),
      initializationFailedHandler: (err) => {
        log.error(`Sidecar initialization failed: ${err instanceof Error ? err.message : String(err)}`);
        showFailure('The REPLUG sidecar failed to start.');
        return false;
      },
    };
    return new LanguageClient('replugCode', 'REPLUG sidecar', serverOptions, clientOptions);
  }

  private errorHandler(): ErrorHandler {
    return {
      error: () => ({ action: ErrorAction.Continue }),
      closed: () => {
        const now = Date.now();
        this.crashes = [...this.crashes.filter((t) => now - t < CRASH_WINDOW_MS), now];
        if (this.crashes.length > MAX_RESTARTS) {
          const message = `The REPLUG sidecar crashed ${this.crashes.length} times in 3 minutes and was not restarted.`;
          log.error(message);
          this.setStatus({ health: 'error', busy: false, message: 'Sidecar stopped after repeated crashes' });
          showFailure(message, true);
          return { action: CloseAction.DoNotRestart, handled: true };
        }
        const message = 'The REPLUG sidecar stopped unexpectedly and was restarted.';
        log.warn(message);
        showFailure(message);
        return { action: CloseAction.Restart, handled: true };
      },
    };
  }
}

/** A toast whose "Show Log" action tells the user what happened; "Restart" where the sidecar stays down. */
function showFailure(message: string, offerRestart = false): void {
  void showWithLog('warning', message, ...(offerRestart ? ['Restart'] : [])).then((choice) => {
    if (choice === 'Restart') void vscode.commands.executeCommand('replugCode.restartSidecar');
  });
}
