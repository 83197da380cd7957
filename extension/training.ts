import * as vscode from 'vscode';
import type { TrainingStatus, TrainStarted } from '../sidecar/server/protocol';
import type { Config } from './config';
import type { LmAccess } from './lm-access';
import { log } from './log';
import { reportFailure } from './notify';
import type { SidecarClient } from './sidecar-client';
import { notice } from './untrusted-text';
import type { ViewLossPoint } from './webview-protocol';

const IDLE: TrainingStatus = { state: 'idle', step: 0, steps: 0 };

/**
 * The editor's side of LSR training: starts and stops runs in the sidecar, keeps the current run's loss history
 * for the training view, and shows progress in a status bar item.
 */
export class TrainingController implements vscode.Disposable {
  private status: TrainingStatus = IDLE;
  private points: ViewLossPoint[] = [];
  private readonly emitter = new vscode.EventEmitter<TrainingStatus>();
  private readonly item = vscode.window.createStatusBarItem('replugCode.training', vscode.StatusBarAlignment.Left, 9);
  private readonly subscription: vscode.Disposable;
  readonly onDidChange = this.emitter.event;

  constructor(
    private readonly sidecar: SidecarClient,
    private readonly config: Config,
    private readonly lm: LmAccess,
  ) {
    this.item.name = 'REPLUG Training';
    this.item.command = 'replugCode.trainingView.focus';
    this.subscription = sidecar.onDidChangeTraining((s) => this.update(s));
  }

  get current(): TrainingStatus {
    return this.status;
  }

  get history(): readonly ViewLossPoint[] {
    return this.points;
  }

  async train(): Promise<TrainStarted | undefined> {
    const lm = await this.lm.endpoint('Training');
    if (!lm) return undefined;
    try {
      const started = await this.sidecar.train({ lm, ...this.config.training() });
      log.info(`Training run ${started.runId} started on ${started.queries} queries; model folder ${started.output}`);
      void vscode.commands.executeCommand('replugCode.trainingView.focus');
      return started;
    } catch (err) {
      void reportFailure('starting the training', err);
      return undefined;
    }
  }

  async stop(): Promise<TrainingStatus | undefined> {
    if (this.status.state !== 'running' && this.status.state !== 'starting') {
      void vscode.window.showInformationMessage('REPLUG: no training is running.');
      return undefined;
    }
    const final = await this.sidecar.cancelTraining();
    void vscode.window.showInformationMessage(notice`REPLUG: ${final.message ?? `training ${final.state}`}`);
    return final;
  }

  dispose(): void {
    this.subscription.dispose();
    this.item.dispose();
    this.emitter.dispose();
  }

  private update(s: TrainingStatus): void {
    if (s.runId !== this.status.runId) this.points = [];
    const last = this.points.at(-1);
    if (s.state === 'running' && s.loss !== undefined && s.step !== last?.step) {
      this.points.push({ step: s.step, loss: s.loss, entropyRetriever: s.entropyRetriever ?? 0, entropyTeacher: s.entropyTeacher ?? 0 });
    }
    if (s.state === 'failed' && this.status.state === 'running') {
      // A run that fails while starting is reported by `train`, which started it.
      void reportFailure('training', s.message ?? 'no reason given', 'Open Settings').then(
        (choice) => choice && vscode.commands.executeCommand('workbench.action.openSettings', 'replugCode.lm'),
      );
    } else if (s.state !== this.status.state && ['done', 'cancelled', 'failed'].includes(s.state)) {
      (s.state === 'failed' ? log.error : log.info)(`Training ${s.runId} ${s.state}: ${s.message ?? ''}`);
    }
    this.status = s;
    this.showInStatusBar(s);
    this.emitter.fire(s);
  }

  private showInStatusBar(s: TrainingStatus): void {
    const loss = s.loss === undefined ? '' : ` · loss ${s.loss.toFixed(3)}`;
    const text: Record<TrainingStatus['state'], string> = {
      idle: '',
      starting: '$(loading~spin) Training…',
      running: `$(pulse) ${s.step}/${s.steps}${loss}`,
      done: `$(check) Trained ${s.step}${loss}`,
      cancelled: `$(debug-pause) Stopped at ${s.step}/${s.steps}`,
      failed: '$(error) Training failed',
    };
    this.item.text = text[s.state];
    this.item.tooltip = `REPLUG training${s.runId ? ` ${s.runId}` : ''}: ${s.message ?? s.state}`;
    if (s.state === 'idle') this.item.hide();
    else this.item.show();
  }
}
