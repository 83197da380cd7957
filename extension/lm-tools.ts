import * as vscode from 'vscode';
import { editorToolName, resolveAgainst, resultParts, RETRIEVAL_TOOLS, type RetrievalTool } from '../sidecar/agent/retrieval-tools';
import { log } from './log';
import type { SidecarClient } from './sidecar-client';

/** What the chat view shows while a tool runs; fixed text, so nothing an agent passes reaches the UI as markdown. */
const RUNNING: Record<string, string> = {
  search_code: 'Searching the workspace with REPLUG',
  related_code: 'Finding related code with REPLUG',
};

/**
 * `search_code` and `related_code` (package.json `languageModelTools`) for chat agents in the editor. They answer
 * through the running sidecar's search request, so they rank with the query model picked with "Use Model…" and see
 * the index the editor keeps up to date. They ask for no confirmation: like the hover, they only read the local
 * index, and VS Code's confirmation is meant for tools with side effects.
 */
export function registerLmTools(sidecar: SidecarClient): vscode.Disposable[] {
  // Editors built on VS Code that leave out the language-model API must still activate the rest of the extension.
  if (typeof vscode.lm?.registerTool !== 'function') {
    log.info('This editor has no language-model tool API: the REPLUG agent tools are not registered.');
    return [];
  }
  return RETRIEVAL_TOOLS.map((tool) => vscode.lm.registerTool(editorToolName(tool), new SidecarRetrievalTool(tool, sidecar)));
}

export class SidecarRetrievalTool implements vscode.LanguageModelTool<object> {
  constructor(
    private readonly tool: RetrievalTool,
    private readonly sidecar: Pick<SidecarClient, 'search' | 'indexStatus'>,
  ) {}

  prepareInvocation(): vscode.PreparedToolInvocation {
    return { invocationMessage: RUNNING[this.tool.name] };
  }

  async invoke(options: vscode.LanguageModelToolInvocationOptions<object>, token: vscode.CancellationToken): Promise<vscode.LanguageModelToolResult> {
    // Thrown errors reach the agent as the tool's answer, so each says what is wrong with the call or the index.
    const params = this.tool.request(options.input, workspacePath);
    const hits = await this.sidecar.search(params, token);
    if (hits.length === 0) {
      const status = await this.sidecar.indexStatus();
      if (status.passages === 0) {
        throw new Error(
          status.busy
            ? 'The workspace is being indexed and the index is still empty: try again shortly.'
            : 'The workspace index is empty: run "REPLUG: Index Workspace" first.',
        );
      }
    }
    const parts = resultParts(hits, (file) => vscode.workspace.asRelativePath(file));
    return new vscode.LanguageModelToolResult(parts.map((text) => new vscode.LanguageModelTextPart(text)));
  }
}

/** A path an agent gave: a file URI, an absolute path, or one relative to a workspace folder. */
function workspacePath(file: string): string {
  if (file.startsWith('file:')) return vscode.Uri.parse(file).fsPath;
  const folders = (vscode.workspace.workspaceFolders ?? []).filter((f) => f.uri.scheme === 'file').map((f) => f.uri.fsPath);
  return resolveAgainst(file, folders);
}
