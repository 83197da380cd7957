import * as vscode from 'vscode';
import { codeFence, fenceLanguage } from '../sidecar/server/code-fence';
import type { WireHit } from '../sidecar/server/protocol';
import { hitLabel, hitSnippet } from './locations';

/**
 * Retrieved snippets as hover markdown. Repository text is untrusted: labels are markdown-escaped and code goes
 * into fences longer than any backtick run inside it, so a snippet can never close its fence and inject markup.
 */
export function snippetsMarkdown(hits: WireHit[], maxLines = 12): vscode.MarkdownString {
  const md = new vscode.MarkdownString();
  md.supportHtml = false;
  md.appendMarkdown('**REPLUG** · related code in other files\n\n');
  for (const hit of hits) {
    const target = vscode.Uri.file(hit.path).with({ fragment: `L${hit.startLine}` });
    md.appendMarkdown(`[${escapeMarkdown(hitLabel(hit))}](${target.toString()}) · score ${hit.score.toFixed(3)}\n`);
    md.appendMarkdown(`\n${codeFence(hitSnippet(hit, maxLines), fenceLanguage(hit.path))}\n\n`);
  }
  return md;
}

export function escapeMarkdown(text: string): string {
  return text.replace(/[\\`*_{}[\]()#+\-.!|<>~]/g, '\\$&');
}
