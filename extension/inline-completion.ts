import * as vscode from 'vscode';
import type { CompleteResult, CompletionHit, LmEndpoint } from '../sidecar/server/protocol';
import { SECTION, type Config } from './config';
import type { LmAccess } from './lm-access';
import { errorMessage, log } from './log';
import type { SearchViewProvider } from './search-view';
import type { SidecarClient } from './sidecar-client';

/** Lines before the cursor sent as the prompt (the sidecar keeps its last 128 tokens). */
const PROMPT_LINES = 60;
/** Typing usually continues within this long; a keystroke cancels the pending request before it is sent. */
const DEBOUNCE_MS = 150;

/** The suggestion last shown and what it was generated from. */
interface Suggestion {
  passages: CompletionHit[];
  where: string;
}

/**
 * REPLUG inline completions: while `replugCode.inlineCompletion.enabled` is on (and the workspace is trusted), an
 * inline completion provider asks the sidecar for a short greedy completion at the cursor; typing cancels it (the
 * editor cancels the request's token, the sidecar stops at the next token). A status bar item shows the state, and
 * the passages behind the last suggestion can be shown in the Search panel.
 */
export class InlineCompletionController implements vscode.Disposable {
  private registration: vscode.Disposable | undefined;
  private readonly item = vscode.window.createStatusBarItem('replugCode.inlineCompletion', vscode.StatusBarAlignment.Left, 8);
  private readonly subscriptions: vscode.Disposable[] = [];
  private inFlight = 0;
  private last: Suggestion | undefined;
  /** False after the endpoint turned out unset, so the user is told once rather than at every keystroke. */
  private endpointKnown = true;

  constructor(
    private readonly sidecar: SidecarClient,
    private readonly config: Config,
    private readonly lm: LmAccess,
    private readonly searchView: SearchViewProvider,
  ) {
    this.item.name = 'REPLUG Inline Completions';
    this.subscriptions.push(
      vscode.workspace.onDidChangeConfiguration((e) => {
        if (e.affectsConfiguration(`${SECTION}.lm`)) this.endpointKnown = true;
        if (e.affectsConfiguration(`${SECTION}.inlineCompletion`)) this.refresh();
      }),
      // Start LM Server gives an endpoint without touching a setting.
      this.lm.onDidChangeManagedServer(() => {
        this.endpointKnown = true;
        this.showState();
      }),
      vscode.workspace.onDidGrantWorkspaceTrust(() => this.refresh()),
      vscode.commands.registerCommand('replugCode.toggleInlineCompletion', () => this.toggle()),
      vscode.commands.registerCommand('replugCode.showCompletionPassages', () => this.showPassages()),
    );
    this.refresh();
  }

  /** The toggle command: flips the setting where its value comes from (a workspace's value outranks the user's). */
  async toggle(): Promise<boolean> {
    const enabled = !this.config.inlineCompletion().enabled;
    this.endpointKnown = true;
    const settings = vscode.workspace.getConfiguration(SECTION);
    const set = settings.inspect<boolean>('inlineCompletion.enabled');
    const target = set?.workspaceValue !== undefined ? vscode.ConfigurationTarget.Workspace : vscode.ConfigurationTarget.Global;
    await settings.update('inlineCompletion.enabled', enabled, target);
    this.refresh();
    return enabled;
  }

  /** Shows the passages behind the last suggestion in the Search panel; returns them. */
  async showPassages(): Promise<CompletionHit[]> {
    if (!this.last) {
      void vscode.window.showInformationMessage('REPLUG: no inline suggestion yet. Turn on inline completions and type in a file.');
      return [];
    }
    const weights = new Map(this.last.passages.map((p) => [p.id, p.weight]));
    await this.searchView.showHits(`Passages behind the suggestion at ${this.last.where}`, this.last.passages, (hit) => `λ ${weights.get(hit.id)?.toFixed(3)}`);
    return this.last.passages;
  }

  dispose(): void {
    this.registration?.dispose();
    this.item.dispose();
    for (const s of this.subscriptions) s.dispose();
  }

  /** Registers the provider only while enabled and trusted: off means no provider at all, not one that says no. */
  private refresh(): void {
    const active = this.config.inlineCompletion().enabled && vscode.workspace.isTrusted;
    if (active && !this.registration) {
      this.registration = vscode.languages.registerInlineCompletionItemProvider({ scheme: 'file' }, { provideInlineCompletionItems: (d, p, _c, t) => this.provide(d, p, t) });
    } else if (!active && this.registration) {
      this.registration.dispose();
      this.registration = undefined;
    }
    this.showState();
  }

  private async provide(document: vscode.TextDocument, position: vscode.Position, token: vscode.CancellationToken): Promise<vscode.InlineCompletionItem[] | undefined> {
    if (!this.sidecar.running || !vscode.workspace.isTrusted) return undefined;
    await new Promise((resolve) => setTimeout(resolve, DEBOUNCE_MS));
    if (token.isCancellationRequested) return undefined;
    const lm = await this.endpoint();
    if (!lm || token.isCancellationRequested) return undefined;
    const settings = this.config.inlineCompletion();
    const first = Math.max(0, position.line - PROMPT_LINES);
    const prompt = document.getText(new vscode.Range(first, 0, position.line, position.character));
    // Mid-line, complete the line; at its end, up to the next blank line.
    const restOfLine = document.lineAt(position.line).text.slice(position.character);
    this.inFlight++;
    this.showState();
    let result: CompleteResult;
    try {
      result = await this.sidecar.complete(
        {
          lm,
          prompt,
          path: document.uri.fsPath,
          promptLines: [first + 1, position.line + 1],
          mode: settings.mode,
          k: settings.k,
          maxTokens: settings.maxTokens,
          stop: restOfLine.trim() ? ['\n'] : ['\n\n'],
          // A retriever trained with abstention completes from the LM alone where it judges no passage helps.
          abstain: true,
        },
        token,
      );
    } catch (err) {
      if (!token.isCancellationRequested) log.warn(`Inline completion failed: ${errorMessage(err)}`);
      return undefined;
    } finally {
      this.inFlight--;
      this.showState();
    }
    if (token.isCancellationRequested || result.text.trim() === '') return undefined;
    this.last = { passages: result.passages, where: `${vscode.workspace.asRelativePath(document.uri)}:${position.line + 1}` };
    log.debug(`Inline completion (${result.requests} LM requests, ${result.abstained ? 'no passage: the retriever abstained' : `${result.passages.length} passages`}, ${result.finishReason})`);
    return [new vscode.InlineCompletionItem(result.text, new vscode.Range(position, position))];
  }

  /** The LM endpoint; when unset, LmAccess tells the user once, and completions wait until the LM settings change. */
  private async endpoint(): Promise<LmEndpoint | undefined> {
    if (!this.endpointKnown) return undefined;
    const lm = await this.lm.endpoint('Inline completion');
    if (!lm) {
      this.endpointKnown = false;
      this.showState();
    }
    return lm;
  }

  private showState(): void {
    const settings = this.config.inlineCompletion();
    if (!settings.enabled) return void this.item.hide();
    const trusted = vscode.workspace.isTrusted;
    this.item.text = !trusted ? '$(circle-slash) Completions' : this.inFlight > 0 ? '$(loading~spin) Completions' : '$(sparkle) Completions';
    const state = !trusted
      ? 'off in Restricted Mode (no language-model calls)'
      : !this.endpointKnown
        ? 'waiting for an LM endpoint (set REPLUG › Lm: Base Url and Model)'
        : `on: ${settings.mode}, k ${settings.k}, up to ${settings.maxTokens} tokens`;
    const tooltip = new vscode.MarkdownString(undefined, true);
    tooltip.isTrusted = { enabledCommands: ['replugCode.toggleInlineCompletion', 'replugCode.showCompletionPassages'] };
    tooltip.appendText(`REPLUG inline completions: ${state}`);
    tooltip.appendMarkdown('\n\n[$(list-unordered) Passages of the last suggestion](command:replugCode.showCompletionPassages) · [$(circle-slash) Turn off](command:replugCode.toggleInlineCompletion)');
    this.item.tooltip = tooltip;
    this.item.command = 'replugCode.showCompletionPassages';
    this.item.show();
  }
}
