import * as vscode from 'vscode';
import type { IndexResult } from '../sidecar/server/protocol';
import type { Config } from './config';
import { errorMessage, log } from './log';
import { searchQuickPick } from './search-quick-pick';
import type { LmAccess } from './lm-access';
import type { ModelCommands } from './model-commands';
import type { SearchViewProvider } from './search-view';
import type { SidecarClient } from './sidecar-client';
import type { TrainingController } from './training';

export interface CommandDeps {
  sidecar: SidecarClient;
  config: Config;
  searchView: SearchViewProvider;
  training: TrainingController;
  models: ModelCommands;
  lm: LmAccess;
}

/** Every `replugCode.*` command in one table (titles and the "REPLUG" category live in package.json). */
export function registerCommands(deps: CommandDeps): vscode.Disposable[] {
  const { sidecar, config, searchView, training, models, lm } = deps;
  const table: Record<string, (...args: unknown[]) => unknown> = {
    'replugCode.indexWorkspace': () => indexWorkspace(sidecar, false, vscode.ProgressLocation.Notification),
    'replugCode.rebuildIndex': () => indexWorkspace(sidecar, true, vscode.ProgressLocation.Notification),
    'replugCode.search': (query?: unknown) =>
      needsSidecar(sidecar, () => searchQuickPick(sidecar, config, typeof query === 'string' ? query : '')),
    'replugCode.retrieveAtCursor': () => needsSidecar(sidecar, () => searchView.retrieveAtCursor()),
    'replugCode.showLog': () => log.show(),
    'replugCode.restartSidecar': () => sidecar.restart(),
    'replugCode.trainRetriever': () => needsSidecar(sidecar, () => training.train()),
    'replugCode.stopTraining': () => needsSidecar(sidecar, () => training.stop()),
    'replugCode.evaluateRetriever': () => needsSidecar(sidecar, () => models.evaluate()),
    'replugCode.compareModels': (query?: unknown) => needsSidecar(sidecar, () => models.compare(query)),
    'replugCode.useModel': () => needsSidecar(sidecar, () => models.useModel()),
    'replugCode.startLmServer': () => needsSidecar(sidecar, () => models.startLm()),
    'replugCode.stopLmServer': () => needsSidecar(sidecar, () => models.stopLm()),
    'replugCode.setLmApiKey': () => lm.promptApiKey(),
  };
  return Object.entries(table).map(([id, run]) => vscode.commands.registerCommand(id, run));
}

/** Indexes every folder of the workspace on disk; reports the outcome in a toast (or only the log when quiet). */
export async function indexWorkspace(
  sidecar: SidecarClient,
  rebuild: boolean,
  location: vscode.ProgressLocation,
): Promise<IndexResult | undefined> {
  const roots = (vscode.workspace.workspaceFolders ?? []).filter((f) => f.uri.scheme === 'file').map((f) => f.uri.fsPath);
  if (roots.length === 0) {
    void vscode.window.showInformationMessage('REPLUG: open a folder first; there is nothing to index.');
    return undefined;
  }
  const loud = location === vscode.ProgressLocation.Notification;
  return needsSidecar(sidecar, async () => {
    try {
      const result = await sidecar.index(roots, rebuild, location);
      const summary = result.cancelled
        ? 'Indexing cancelled; what was done so far is kept.'
        : `Indexed ${result.files} files into ${result.passages} passages (${result.filesChanged} changed) in ${result.seconds.toFixed(1)} s.`;
      log.info(summary);
      if (!result.cancelled) {
        for (const [grammar, reason] of Object.entries(result.grammarErrors ?? {})) {
          log.warn(`The ${grammar} grammar did not load (${reason}); its files were cut into line windows.`);
        }
      }
      if (loud) void vscode.window.showInformationMessage(`REPLUG: ${summary}`);
      return result;
    } catch (err) {
      log.error(`Indexing failed: ${errorMessage(err)}`);
      void vscode.window.showErrorMessage(`REPLUG: indexing failed: ${errorMessage(err)}`, 'Show Log').then((choice) => {
        if (choice) log.show();
      });
      return undefined;
    }
  });
}

async function needsSidecar<T>(sidecar: SidecarClient, run: () => Promise<T>): Promise<T | undefined> {
  if (!sidecar.running) {
    const choice = await vscode.window.showWarningMessage('REPLUG: the sidecar is not running.', 'Restart', 'Show Log');
    if (choice === 'Restart') await sidecar.restart();
    if (choice === 'Show Log') log.show();
    return undefined;
  }
  return run();
}
