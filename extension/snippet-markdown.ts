import * as vscode from 'vscode';
import { codeFence, fenceLanguage } from '../sidecar/server/code-fence';
import type { WireHit } from '../sidecar/server/protocol';
import { hitLabel } from './locations';

/**
 * Retrieved snippets as hover markdown. Repository text is untrusted: labels are markdown-escaped and code goes
 * into fences longer than any backtick run inside it, so a snippet can never close its fence and inject markup.
 */
export function snippetsMarkdown(hits: WireHit[], maxLines = 12): vscode.MarkdownString {
  const md = new vscode.MarkdownString();
  md.supportHtml = false;
  md.appendMarkdown('**REPLUG** · related code elsewhere\n\n');
  for (const hit of hits) {
    const target = vscode.Uri.file(hit.path).with({ fragment: `L${hit.startLine}` });
    md.appendMarkdown(`[${escapeMarkdown(hitLabel(hit))}](${target.toString()}) · score ${hit.score.toFixed(3)}\n`);
    md.appendMarkdown(`\n${codeFence(hit.text.split('\n').slice(0, maxLines).join('\n'), fenceLanguage(hit.path))}\n\n`);
  }
  return md;
}

export function escapeMarkdown(text: string): string {
  return text.replace(/[\\`*_{}[\]()#+\-.!|<>~]/g, '\\$&');
}
