import * as vscode from 'vscode';
import type { Config } from './config';
import type { SidecarClient } from './sidecar-client';
import { snippetsMarkdown } from './snippet-markdown';

/** Hovers often fire while the mouse merely crosses a token; wait this long before asking the sidecar. */
const HOVER_DEBOUNCE_MS = 250;
const HOVER_HITS = 3;

/**
 * On an identifier (or inside a selection) shows the top snippets from other files of the workspace: the hovered
 * file is open already, so its own passages would only repeat what the user sees. A retriever trained with
 * abstention shows nothing where it would use no passage.
 */
export class RetrievalHoverProvider implements vscode.HoverProvider {
  constructor(
    private readonly sidecar: SidecarClient,
    private readonly config: Config,
  ) {}

  async provideHover(
    document: vscode.TextDocument,
    position: vscode.Position,
    token: vscode.CancellationToken,
  ): Promise<vscode.Hover | undefined> {
    if (!this.config.hoverEnabled || !this.sidecar.running) return undefined;
    const target = hoverTarget(document, position);
    if (!target) return undefined;
    await new Promise((resolve) => setTimeout(resolve, HOVER_DEBOUNCE_MS));
    if (token.isCancellationRequested) return undefined;
    const hits = await this.sidecar.search({ query: target.query, k: HOVER_HITS, excludePath: document.uri.fsPath, abstain: this.config.hoverAbstains }, token);
    if (token.isCancellationRequested || hits.length === 0) return undefined;
    return new vscode.Hover(snippetsMarkdown(hits), target.range);
  }
}

function hoverTarget(document: vscode.TextDocument, position: vscode.Position) {
  const editor = vscode.window.activeTextEditor;
  const selection = editor?.document === document ? editor.selection : undefined;
  if (selection && !selection.isEmpty && selection.contains(position)) {
    return { query: document.getText(selection), range: new vscode.Range(selection.start, selection.end) };
  }
  const range = document.getWordRangeAtPosition(position);
  // Single characters and numbers make poor queries.
  if (!range) return undefined;
  const word = document.getText(range);
  if (word.length < 3 || /^\d+$/.test(word)) return undefined;
  return { query: word, range };
}
