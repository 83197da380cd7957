import * as vscode from 'vscode';
import { log, errorMessage } from './log';
import type { SidecarClient } from './sidecar-client';

/**
 * Keeps the index in step with the disk: saves and creations re-chunk the file, deletions drop it
 * (a rename arrives as delete + create). Only files on disk (`file:` scheme) count.
 */
export class IndexFileWatcher implements vscode.Disposable {
  private readonly watcher = vscode.workspace.createFileSystemWatcher('**/*');
  private readonly disposables: vscode.Disposable[] = [this.watcher];

  constructor(private readonly sidecar: SidecarClient) {
    this.watcher.onDidChange((uri) => this.forward(uri, 'update'), null, this.disposables);
    this.watcher.onDidCreate((uri) => this.forward(uri, 'update'), null, this.disposables);
    this.watcher.onDidDelete((uri) => this.forward(uri, 'remove'), null, this.disposables);
  }

  private forward(uri: vscode.Uri, what: 'update' | 'remove'): void {
    if (uri.scheme !== 'file' || !this.sidecar.running) return;
    const request = what === 'update' ? this.sidecar.updateFile(uri.fsPath) : this.sidecar.removeFile(uri.fsPath);
    // Routine (a folder, a file outside the indexed roots): worth a log line, not a toast.
    request.catch((err) => log.debug(`Index ${what} of ${uri.fsPath} skipped: ${errorMessage(err)}`));
  }

  dispose(): void {
    for (const d of this.disposables) d.dispose();
  }
}
