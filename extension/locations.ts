import * as vscode from 'vscode';
import type { WireHit } from '../sidecar/server/protocol';
import { revealBidi } from './untrusted-text';
import type { ViewHit } from './webview-protocol';

/** The hit's lines as an editor range (the wire is 1-based inclusive, VS Code 0-based). */
export function hitRange(hit: Pick<WireHit, 'startLine' | 'endLine'>): vscode.Range {
  return new vscode.Range(hit.startLine - 1, 0, hit.endLine - 1, Number.MAX_SAFE_INTEGER);
}

/** `src/a.ts:10-29`, relative to its workspace folder when it has one (bidi controls shown, as in all hit text). */
export function hitLabel(hit: Pick<WireHit, 'path' | 'startLine' | 'endLine'>): string {
  return `${hitPath(hit)}:${hit.startLine}-${hit.endLine}`;
}

function hitPath(hit: Pick<WireHit, 'path'>): string {
  return revealBidi(vscode.workspace.asRelativePath(hit.path));
}

/** The first `maxLines` lines of the hit's passage, as shown in the webviews and the hover. */
export function hitSnippet(hit: Pick<WireHit, 'text'>, maxLines: number): string {
  return revealBidi(hit.text.split('\n').slice(0, maxLines).join('\n'));
}

/** One result row for a webview. */
export function viewHit(hit: WireHit, snippetLines: number): ViewHit {
  return { path: hitPath(hit), lines: `${hit.startLine}-${hit.endLine}`, score: hit.score.toFixed(3), code: hitSnippet(hit, snippetLines) };
}

export async function openHit(hit: Pick<WireHit, 'path' | 'startLine' | 'endLine'>): Promise<void> {
  const range = hitRange(hit);
  await vscode.window.showTextDocument(vscode.Uri.file(hit.path), {
    selection: new vscode.Range(range.start, range.start),
    preview: true,
  });
  const editor = vscode.window.activeTextEditor;
  editor?.revealRange(range, vscode.TextEditorRevealType.InCenterIfOutsideViewport);
}

/**
 * What "retrieve for the current selection/cursor" searches with: the selection if there is one, otherwise the
 * lines around the cursor (the code being written is the best description of what would help).
 */
export function queryAtCursor(editor: vscode.TextEditor, contextLines = 3): { query: string; lines: [number, number] } {
  const { selection, document } = editor;
  if (!selection.isEmpty) {
    return { query: document.getText(selection), lines: [selection.start.line + 1, selection.end.line + 1] };
  }
  const first = Math.max(0, selection.active.line - contextLines);
  const last = Math.min(document.lineCount - 1, selection.active.line + contextLines);
  const range = new vscode.Range(first, 0, last, document.lineAt(last).text.length);
  return { query: document.getText(range), lines: [first + 1, last + 1] };
}
