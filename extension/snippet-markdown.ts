import * as vscode from 'vscode';
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
    md.appendMarkdown(codeFence(hitSnippet(hit, maxLines), languageOf(hit.path)));
  }
  return md;
}

function codeFence(code: string, language: string): string {
  const longestRun = Math.max(0, ...(code.match(/`+/g) ?? []).map((run) => run.length));
  const fence = '`'.repeat(Math.max(3, longestRun + 1));
  return `\n${fence}${language}\n${code}\n${fence}\n\n`;
}

export function escapeMarkdown(text: string): string {
  return text.replace(/[\\`*_{}[\]()#+\-.!|<>~]/g, '\\$&');
}

/** Fence language from the file extension; unknown ones simply get no highlighting. */
function languageOf(path: string): string {
  const ext = /\.([A-Za-z0-9]+)$/.exec(path)?.[1]?.toLowerCase() ?? '';
  return /^[a-z0-9]+$/.test(ext) ? ext : '';
}
