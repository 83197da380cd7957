import * as vscode from 'vscode';
import type { CompareResult, WireHit } from '../sidecar/server/protocol';
import { openHit, viewHit } from './locations';
import type { TrainingController } from './training';
import { revealBidi } from './untrusted-text';
import { webviewPage } from './webview-html';
import type { FromTrainingView, ToTrainingView } from './webview-protocol';

const SNIPPET_LINES = 12;

/**
 * The training side panel: the run's live loss chart (uPlot, shipped in dist/webview), step counter, ETA and a
 * Stop button; below it, base-vs-tuned results side by side for a query.
 */
export class TrainingViewProvider implements vscode.WebviewViewProvider, vscode.Disposable {
  static readonly viewType = 'replugCode.trainingView';
  private view: vscode.WebviewView | undefined;
  private comparison: { base: WireHit[]; tuned: WireHit[]; message: ToTrainingView } | undefined;
  private readonly disposables: vscode.Disposable[] = [];

  constructor(
    private readonly extensionUri: vscode.Uri,
    private readonly training: TrainingController,
  ) {
    this.disposables.push(
      training.onDidChange(() => this.postTraining()),
      vscode.workspace.onDidGrantWorkspaceTrust(() => this.postTraining()),
    );
  }

  resolveWebviewView(view: vscode.WebviewView): void {
    this.view = view;
    const media = vscode.Uri.joinPath(this.extensionUri, 'media');
    const assets = vscode.Uri.joinPath(this.extensionUri, 'dist', 'webview');
    view.webview.options = { enableScripts: true, localResourceRoots: [media, assets] };
    view.webview.html = webviewPage(view.webview, {
      title: 'REPLUG Training',
      styles: [vscode.Uri.joinPath(assets, 'uPlot.min.css'), vscode.Uri.joinPath(media, 'common.css'), vscode.Uri.joinPath(media, 'training-view.css')],
      scripts: [vscode.Uri.joinPath(assets, 'uPlot.iife.min.js'), vscode.Uri.joinPath(media, 'hit-list.js'), vscode.Uri.joinPath(media, 'training-view.js')],
      body: `  <section id="run">
    <div id="run-header"><span id="state">No training run yet</span><button id="cancel" class="danger" hidden>Stop</button><button id="train" disabled>Train</button></div>
    <div id="numbers"><span id="step"></span><span id="loss"></span><span id="eta"></span></div>
    <div id="chart" aria-label="Training loss by step"></div>
    <div id="message" role="status"></div>
  </section>
  <section id="compare">
    <form id="compare-form">
      <input id="compare-query" type="search" placeholder="Query to compare base vs tuned" aria-label="Comparison query">
      <button type="submit">Compare</button>
    </form>
    <div id="compare-status" role="status"></div>
    <div id="columns"><div class="column"><h3 id="base-title">Base</h3><ol id="base"></ol></div><div class="column"><h3 id="tuned-title">Tuned</h3><ol id="tuned"></ol></div></div>
  </section>`,
    });
    view.webview.onDidReceiveMessage((msg: FromTrainingView) => this.onMessage(msg), null, this.disposables);
    view.onDidDispose(() => (this.view = undefined), null, this.disposables);
  }

  async showComparison(query: string, tunedName: string, result: CompareResult): Promise<void> {
    const toView = (hit: WireHit) => viewHit(hit, SNIPPET_LINES);
    const message: ToTrainingView = { type: 'comparison', query, tunedName: revealBidi(tunedName), base: result.base.map(toView), tuned: result.tuned.map(toView) };
    this.comparison = { ...result, message };
    await vscode.commands.executeCommand(`${TrainingViewProvider.viewType}.focus`);
    void this.view?.webview.postMessage(message);
  }

  dispose(): void {
    for (const d of this.disposables) d.dispose();
  }

  private postTraining(): void {
    const message: ToTrainingView = {
      type: 'training',
      status: this.training.current,
      history: [...this.training.history],
      trusted: vscode.workspace.isTrusted,
    };
    void this.view?.webview.postMessage(message);
  }

  private async onMessage(msg: FromTrainingView): Promise<void> {
    switch (msg.type) {
      case 'ready':
        // A (re)opened view starts blank: send the run so far and the last comparison.
        this.postTraining();
        if (this.comparison) void this.view?.webview.postMessage(this.comparison.message);
        break;
      case 'train':
        await vscode.commands.executeCommand('replugCode.trainRetriever');
        break;
      case 'cancel':
        await vscode.commands.executeCommand('replugCode.stopTraining');
        break;
      case 'compare':
        await vscode.commands.executeCommand('replugCode.compareModels', String(msg.query));
        break;
      case 'open': {
        const hit = Number.isInteger(msg.index) ? this.comparison?.[msg.side === 'tuned' ? 'tuned' : 'base'][msg.index] : undefined;
        if (hit) await openHit(hit);
        break;
      }
    }
  }
}
