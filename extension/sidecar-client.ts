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
  type CompareParams,
  type CompleteParams,
  type CompleteResult,
  type CompareResult,
  type EvalReport,
  type EvaluateParams,
  type FileExplanation,
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
import { lostConnection, SidecarStoppedError } from './sidecar-errors';
import { showWithLog } from './notify';

/** Crashes tolerated within CRASH_WINDOW_MS before the sidecar is left stopped (a crash loop helps nobody). */
const MAX_RESTARTS = 3;
const CRASH_WINDOW_MS = 3 * 60_000;

/** An index job's outcome, and how many times it was resumed after the sidecar restarted under it. */
export type IndexOutcome = IndexResult & { resumedAfterRestarts?: number };

/**
 * Owns the sidecar process: starts it, restarts it after a crash (bounded), and exposes the protocol as typed
 * methods. Requests wait out a start or restart; a request cut off by a crash fails with plain words
 * (SidecarStoppedError), except an index job, which is sent again once the sidecar is back and resumes from its
 * checkpoint. Status notifications and client state changes are re-published as one `onDidChangeStatus` event.
 */
export class SidecarClient implements vscode.Disposable {
  private client: LanguageClient | undefined;
  /** A start or restart in progress: requests wait for it. */
  private starting: Promise<void> | undefined;
  private crashes: number[] = [];
  /** How many times a sidecar has come up: a request lost in run N waits for run N + 1. */
  private runs = 0;
  private runWaiters: { after: number; resolve: (running: boolean) => void }[] = [];
  private indexJobs = 0;
  /** Runs ended by `restart()` (new settings), not by a crash: a job they cut off goes on without a crash notice. */
  private readonly restartedRuns = new Set<number>();
  private readonly statusEmitter = new vscode.EventEmitter<StatusParams>();
  private lastStatus: StatusParams = { health: 'ok', busy: true, message: 'Starting…' };
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

  /** Whether a sidecar runs, once a start or restart in progress has finished. */
  async runningAfterStart(): Promise<boolean> {
    await this.starting?.catch(() => undefined);
    return this.running;
  }

  start(): Promise<void> {
    return this.whileStarting(() => this.launch());
  }

  /** Resolves once a sidecar is running (after start or a restart), or will not be. */
  async whenRunning(): Promise<void> {
    if (!this.running) await this.nextRun(this.runs);
  }

  /** Whether an index job is in flight (one cut off by a restart is sent again to the new sidecar). */
  get indexing(): boolean {
    return this.indexJobs > 0;
  }

  restart(): Promise<void> {
    return this.whileStarting(async () => {
      this.restartedRuns.add(this.runs);
      await this.stop();
      this.crashes = [];
      await this.launch();
    });
  }

  async stop(): Promise<void> {
    const client = this.client;
    this.client = undefined;
    if (client?.isRunning()) await client.stop();
  }

  indexStatus(): Promise<IndexStatusResult> {
    return this.request('reading the index status', (c) => c.sendRequest(IndexStatusRequest.type));
  }

  search(params: SearchParams, token?: vscode.CancellationToken): Promise<WireHit[]> {
    return this.request('searching', (c) => c.sendRequest(SearchRequest.type, params, token));
  }

  explainFile(path: string): Promise<FileExplanation> {
    return this.request('explaining a file', (c) => c.sendRequest(ExplainFileRequest.type, { path }));
  }

  updateFile(path: string): Promise<void> {
    return this.request('updating a file', (c) => c.sendRequest(UpdateFileRequest.type, { path }));
  }

  removeFile(path: string): Promise<void> {
    return this.request('removing a file', (c) => c.sendRequest(RemoveFileRequest.type, { path }));
  }

  train(params: TrainParams): Promise<TrainStarted> {
    return this.request('starting the training', (c) => c.sendRequest(TrainRequest.type, params));
  }

  trainingStatus(): Promise<TrainingStatus> {
    return this.request('reading the training status', (c) => c.sendRequest(TrainingStatusRequest.type));
  }

  /** Resolves once the run has stopped (after its checkpoint is saved). */
  cancelTraining(): Promise<TrainingStatus> {
    return this.request('stopping the training', (c) => c.sendRequest(CancelTrainingRequest.type));
  }

  /** Evaluates with the sidecar's work-done progress shown as a notification. */
  evaluate(params: EvaluateParams): Promise<EvalReport> {
    return Promise.resolve(
      vscode.window.withProgress({ location: vscode.ProgressLocation.Notification, title: 'REPLUG: Evaluating' }, (progress) =>
        this.request('evaluating', async (client) => {
          const workDoneToken = progressToken('eval');
          const listener = client.onProgress(WorkDoneProgress.type, workDoneToken, (value) => {
            if (value.kind !== 'end') progress.report({ message: value.message });
          });
          try {
            return await client.sendRequest(EvaluateRequest.type, { ...params, workDoneToken });
          } finally {
            listener.dispose();
          }
        }),
      ),
    );
  }

  compare(params: CompareParams): Promise<CompareResult> {
    return this.request('comparing', (c) => c.sendRequest(CompareRequest.type, params));
  }

  /** Cancelling `token` stops the generation at the next token. */
  complete(params: CompleteParams, token: vscode.CancellationToken): Promise<CompleteResult> {
    return this.request('completing', (c) => c.sendRequest(CompleteRequest.type, params, token));
  }

  listModels(): Promise<ModelsResult> {
    return this.request('listing the trained models', (c) => c.sendRequest(ListModelsRequest.type));
  }

  useModel(model: string | undefined): Promise<ModelsResult> {
    return this.request('switching the model', (c) => c.sendRequest(UseModelRequest.type, { model }));
  }

  startLm(params: StartLmParams): Promise<LmServerStatus> {
    return this.request('starting the LM server', (c) => c.sendRequest(StartLmRequest.type, params));
  }

  stopLm(): Promise<LmServerStatus> {
    return this.request('stopping the LM server', (c) => c.sendRequest(StopLmRequest.type));
  }

  workspaceTrusted(): void {
    if (this.running) void this.client!.sendNotification(WorkspaceTrustedNotification.type);
  }

  /**
   * Runs an index job with its work-done progress shown at `location`; cancelling the progress cancels the job.
   * Resolves `{ cancelled: true }` when cancelled. When the sidecar crashes under it, the job is sent again once
   * the sidecar has restarted and resumes from the last checkpoint (a rebuild from the rebuild's own).
   */
  index(roots: string[], rebuild: boolean, location: vscode.ProgressLocation): Promise<IndexOutcome> {
    const title = rebuild ? 'REPLUG: Rebuilding index' : 'REPLUG: Indexing';
    return Promise.resolve(
      vscode.window.withProgress({ location, title, cancellable: true }, async (progress, token) => {
        this.indexJobs++;
        try {
          for (let restarts = 0; ; ) {
            try {
              const result = await this.indexOnce(roots, rebuild, progress, token);
              return restarts ? { ...result, resumedAfterRestarts: restarts } : result;
            } catch (err) {
              if (token.isCancellationRequested) return { cancelled: true as const };
              if (!(err instanceof SidecarStoppedError)) throw err;
              if (!this.restartedRuns.has(err.run)) restarts++;
              progress.report({ message: 'The sidecar stopped; indexing resumes from the last checkpoint once it has restarted…' });
              if (!(await this.nextRun(err.run))) throw new SidecarStoppedError(err.what, err.run, false);
              log.info(`The sidecar restarted: resuming ${rebuild ? 'the rebuild' : 'indexing'} from the last checkpoint`);
            }
          }
        } finally {
          this.indexJobs--;
        }
      }),
    );
  }

  dispose(): void {
    void this.stop();
    this.giveUp();
    this.statusEmitter.dispose();
    this.trainingEmitter.dispose();
  }

  private async indexOnce(
    roots: string[],
    rebuild: boolean,
    progress: vscode.Progress<{ message?: string; increment?: number }>,
    token: vscode.CancellationToken,
  ): Promise<IndexResult> {
    return this.request('indexing', async (client) => {
      const workDoneToken = progressToken('index');
      let reported = 0;
      const listener = client.onProgress(WorkDoneProgress.type, workDoneToken, (value) => {
        if (value.kind === 'end') return;
        const increment = value.percentage !== undefined ? Math.max(0, value.percentage - reported) : undefined;
        reported += increment ?? 0;
        progress.report({ message: value.message, increment });
      });
      try {
        return await client.sendRequest(IndexRequest.type, { roots, rebuild, workDoneToken }, token);
      } finally {
        listener.dispose();
      }
    });
  }

  /**
   * Sends a request once a sidecar runs (waiting out a start or restart in progress). A request the connection
   * loss cut off fails with SidecarStoppedError; anything else as the sidecar answered.
   */
  private async request<R>(what: string, send: (client: LanguageClient) => Promise<R>): Promise<R> {
    if (!(await this.runningAfterStart()) || !this.client) throw new Error('The REPLUG sidecar is not running. Run "REPLUG: Show Log" to see why.');
    const run = this.runs;
    try {
      return await send(this.client);
    } catch (err) {
      throw lostConnection(err) ? new SidecarStoppedError(what, run) : err;
    }
  }

  private whileStarting(start: () => Promise<void>): Promise<void> {
    const starting = start();
    this.starting = starting;
    return starting.finally(() => {
      if (this.starting === starting) this.starting = undefined;
    });
  }

  private async launch(): Promise<void> {
    const client = this.createClient();
    this.client = client;
    client.onDidChangeState(({ newState }) => {
      log.info(`Sidecar ${State[newState].toLowerCase()}`);
      if (newState === State.Running) this.ran();
      if (newState === State.Stopped && this.client === client) {
        this.setStatus({ health: 'error', busy: false, message: 'Sidecar stopped' });
      }
    });
    client.onNotification(StatusNotification.type, (status) => this.setStatus(status));
    client.onNotification(TrainingStatusNotification.type, (status) => this.trainingEmitter.fire(status));
    this.setStatus({ health: 'ok', busy: true, message: 'Starting…' });
    await client.start();
  }

  /** A sidecar came up: requests lost in earlier runs may go again. */
  private ran(): void {
    this.runs++;
    const ready = this.runWaiters.filter((w) => w.after < this.runs);
    this.runWaiters = this.runWaiters.filter((w) => w.after >= this.runs);
    for (const waiter of ready) waiter.resolve(true);
  }

  /** No sidecar will come up again on its own (crash loop, failed start, disposal). */
  private giveUp(): void {
    for (const waiter of this.runWaiters.splice(0)) waiter.resolve(false);
  }

  /** True once a sidecar run after `after` is up; false when none will be. */
  private nextRun(after: number): Promise<boolean> {
    if (this.runs > after) return Promise.resolve(true);
    return new Promise((resolve) => this.runWaiters.push({ after, resolve }));
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
        this.giveUp();
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
          this.giveUp();
          return { action: CloseAction.DoNotRestart, handled: true };
        }
        const message = this.indexJobs
          ? 'The REPLUG sidecar stopped unexpectedly while indexing. It is being restarted, and indexing resumes from the last checkpoint.'
          : 'The REPLUG sidecar stopped unexpectedly and was restarted.';
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

/** A work-done progress token of our own, unique per request. */
function progressToken(kind: string): string {
  return `replug-${kind}-${Date.now()}-${Math.random().toString(36).slice(2)}`;
}
