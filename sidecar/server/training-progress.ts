import type { WorkDoneProgressServerReporter } from 'vscode-languageserver/node';
import type { TrainingStatus } from './protocol';

/**
 * Shows a training run as server-initiated work-done progress (a run outlives the request that started it, so it
 * cannot use that request's token). Cancelling the progress in the editor stops the run.
 */
export class TrainingProgress {
  private reporter: Promise<WorkDoneProgressServerReporter | undefined> | undefined;
  private runId: string | undefined;

  constructor(
    private readonly create: () => Promise<WorkDoneProgressServerReporter>,
    private readonly onCancel: () => void,
  ) {}

  update(s: TrainingStatus): void {
    if (s.state === 'starting' || (s.state === 'running' && s.runId !== this.runId)) this.begin(s);
    const reporter = this.reporter;
    if (!reporter) return;
    if (s.state === 'running' && s.steps > 0) {
      const loss = s.loss === undefined ? '' : ` · loss ${s.loss.toFixed(4)}`;
      void reporter.then((r) => r?.report(Math.floor((100 * s.step) / s.steps), `step ${s.step}/${s.steps}${loss}`));
    } else if (s.state !== 'starting') {
      this.reporter = undefined;
      void reporter.then((r) => r?.done());
    }
  }

  private begin(s: TrainingStatus): void {
    if (this.reporter) void this.reporter.then((r) => r?.done());
    this.runId = s.runId;
    this.reporter = this.create().then(
      (r) => {
        r.begin('REPLUG: Training retriever', 0, s.message, true);
        r.token.onCancellationRequested(() => this.onCancel());
        return r;
      },
      // A client that cannot show progress still gets the training-status notifications.
      () => undefined,
    );
  }
}
