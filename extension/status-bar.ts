import * as vscode from 'vscode';
import type { StatusParams } from '../sidecar/server/protocol';

/** One status bar item showing the index state; clicking it opens Search Code (or the log when unhealthy). */
export class StatusBar implements vscode.Disposable {
  private readonly item = vscode.window.createStatusBarItem('replugCode.status', vscode.StatusBarAlignment.Left, 10);

  constructor(private readonly trusted: () => boolean) {
    this.item.name = 'REPLUG Index';
  }

  update(status: StatusParams): void {
    const icon = status.busy ? '$(loading~spin)' : status.health === 'error' ? '$(error)' : '$(search)';
    this.item.text = `${icon} REPLUG`;
    this.item.backgroundColor =
      status.health === 'error'
        ? new vscode.ThemeColor('statusBarItem.errorBackground')
        : status.health === 'warning'
          ? new vscode.ThemeColor('statusBarItem.warningBackground')
          : undefined;
    this.item.command = status.health === 'error' ? 'replugCode.showLog' : 'replugCode.search';
    const tooltip = new vscode.MarkdownString(undefined, true);
    tooltip.isTrusted = { enabledCommands: ['replugCode.search', 'replugCode.indexWorkspace', 'replugCode.rebuildIndex', 'replugCode.showLog'] };
    tooltip.appendText(`REPLUG index: ${status.message ?? status.health}`);
    if (!this.trusted()) tooltip.appendText('\n\nRestricted Mode: no language-model calls are made in this workspace.');
    tooltip.appendMarkdown(
      '\n\n[$(search) Search](command:replugCode.search) · [$(refresh) Index](command:replugCode.indexWorkspace) · ' +
        '[$(sync) Rebuild](command:replugCode.rebuildIndex) · [$(output) Log](command:replugCode.showLog)',
    );
    this.item.tooltip = tooltip;
    this.item.show();
  }

  dispose(): void {
    this.item.dispose();
  }
}
