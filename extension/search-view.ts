import * as vscode from 'vscode';
import type { WireHit } from '../sidecar/server/protocol';
import type { Config } from './config';
import { openHit, queryAtCursor, viewHit } from './locations';
import { errorMessage, log } from './log';
import type { SidecarClient } from './sidecar-client';
import { webviewPage } from './webview-html';
import type { FromWebview, ToWebview } from './webview-protocol';

/** Lines of each snippet shown in the panel; the full passage is one click away. */
const SNIPPET_LINES = 15;

/** The side panel: a search box, ranked snippets, and "retrieve for the current selection/cursor". */
export class SearchViewProvider implements vscode.WebviewViewProvider, vscode.Disposable {
  static readonly viewType = 'replugCode.searchView';
  private view: vscode.WebviewView | undefined;
  private hits: WireHit[] = [];
  private pending: vscode.CancellationTokenSource | undefined;
  private readonly disposables: vscode.Disposable[] = [];

  constructor(
    private readonly extensionUri: vscode.Uri,
    private readonly sidecar: SidecarClient,
    private readonly config: Config,
  ) {}

  resolveWebviewView(view: vscode.WebviewView): void {
    this.view = view;
    const media = vscode.Uri.joinPath(this.extensionUri, 'media');
    view.webview.options = { enableScripts: true, localResourceRoots: [media] };
    view.webview.html = this.html(view.webview, media);
    view.webview.onDidReceiveMessage((msg: FromWebview) => this.onMessage(msg), null, this.disposables);
    view.onDidDispose(() => (this.view = undefined), null, this.disposables);
  }

  /** Searches with the active editor's selection (or the lines around the cursor), leaving out that very span. */
  async retrieveAtCursor(): Promise<void> {
    const editor = vscode.window.activeTextEditor;
    if (!editor) {
      void vscode.window.showInformationMessage('REPLUG: open a file and select some code (or place the cursor) first.');
      return;
    }
    const { query, lines } = queryAtCursor(editor);
    await vscode.commands.executeCommand(`${SearchViewProvider.viewType}.focus`);
    await this.search(query, { excludePath: editor.document.uri.fsPath, excludeLines: lines });
  }

  async search(query: string, exclude: { excludePath?: string; excludeLines?: [number, number] } = {}): Promise<void> {
    this.pending?.cancel();
    const cts = (this.pending = new vscode.CancellationTokenSource());
    this.post({ type: 'busy', query });
    try {
      const hits = await this.sidecar.search({ query, k: this.config.k, mode: this.config.mode, ...exclude }, cts.token);
      if (cts.token.isCancellationRequested) return;
      this.show(query, hits);
    } catch (err) {
      if (cts.token.isCancellationRequested) return;
      log.error(`Search failed: ${errorMessage(err)}`);
      this.post({ type: 'error', message: errorMessage(err) });
    }
  }

  /** Shows hits that did not come from a search (the passages behind a completion), under `title`. */
  async showHits(title: string, hits: WireHit[], score: (hit: WireHit) => string): Promise<void> {
    this.pending?.cancel();
    await vscode.commands.executeCommand(`${SearchViewProvider.viewType}.focus`);
    this.show(title, hits, score);
  }

  dispose(): void {
    this.pending?.cancel();
    for (const d of this.disposables) d.dispose();
  }

  private async onMessage(msg: FromWebview): Promise<void> {
    switch (msg.type) {
      case 'search':
        await this.search(String(msg.query));
        break;
      case 'open': {
        const hit = Number.isInteger(msg.index) ? this.hits[msg.index] : undefined;
        if (hit) await openHit(hit);
        break;
      }
      case 'retrieveAtCursor':
        await this.retrieveAtCursor();
        break;
    }
  }

  private show(query: string, hits: WireHit[], score = (hit: WireHit) => hit.score.toFixed(3)): void {
    this.hits = hits;
    this.post({ type: 'results', query, hits: hits.map((hit) => ({ ...viewHit(hit, SNIPPET_LINES), score: score(hit) })) });
  }

  private post(message: ToWebview): void {
    void this.view?.webview.postMessage(message);
  }

  private html(webview: vscode.Webview, media: vscode.Uri): string {
    return webviewPage(webview, {
      title: 'REPLUG Search',
      styles: [vscode.Uri.joinPath(media, 'common.css'), vscode.Uri.joinPath(media, 'search-view.css')],
      scripts: [vscode.Uri.joinPath(media, 'hit-list.js'), vscode.Uri.joinPath(media, 'search-view.js')],
      body: `  <form id="search-form">
    <input id="query" type="search" placeholder="Describe the code you need" aria-label="Search query">
    <button type="submit">Search</button>
  </form>
  <button id="at-cursor" class="secondary" title="Retrieve code related to the editor's selection or cursor">Retrieve for selection / cursor</button>
  <div id="status" role="status"></div>
  <ol id="results"></ol>`,
    });
  }
}
