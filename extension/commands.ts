import * as vscode from 'vscode';
import type { FileExplanation } from '../sidecar/server/protocol';
import type { Config } from './config';
import { explanationText } from './file-explanation';
import type { LmAccess } from './lm-access';
import { log } from './log';
import type { ModelCommands } from './model-commands';
import { reportFailure, showWithLog } from './notify';
import { searchQuickPick } from './search-quick-pick';
import type { SearchViewProvider } from './search-view';
import type { IndexOutcome, SidecarClient } from './sidecar-client';
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
    'replugCode.explainFile': (target?: unknown) => needsSidecar(sidecar, () => explainFile(sidecar, target)),
  };
  return Object.entries(table).map(([id, run]) => vscode.commands.registerCommand(id, run));
}

/** Indexes every folder of the workspace on disk; reports the outcome in a toast (or only the log when quiet). */
export async function indexWorkspace(
  sidecar: SidecarClient,
  rebuild: boolean,
  location: vscode.ProgressLocation,
): Promise<IndexOutcome | undefined> {
  const roots = (vscode.workspace.workspaceFolders ?? []).filter((f) => f.uri.scheme === 'file').map((f) => f.uri.fsPath);
  if (roots.length === 0) {
    void vscode.window.showInformationMessage('REPLUG: open a folder first; there is nothing to index.');
    return undefined;
  }
  const loud = location === vscode.ProgressLocation.Notification;
  return needsSidecar(sidecar, async () => {
    try {
      const result = await sidecar.index(roots, rebuild, location);
      const summary = indexSummary(result, rebuild);
      log.info(summary);
      if (!result.cancelled) {
        for (const [grammar, reason] of Object.entries(result.grammarErrors ?? {})) {
          log.warn(`The ${grammar} grammar did not load (${reason}); its files were cut into line windows.`);
        }
      }
      // A job that survived a crash says so even when it ran in the background: the user saw the crash.
      if (loud || (!result.cancelled && result.resumedAfterRestarts)) void vscode.window.showInformationMessage(`REPLUG: ${summary}`);
      return result;
    } catch (err) {
      void reportFailure('indexing', err);
      return undefined;
    }
  });
}

/**
 * Brings the index up to date in the background: the first full build shows a notification (it can take a while),
 * later catch-up scans only the status bar; a rebuild that the editor's closing (or a crash) interrupted resumes
 * from its checkpoint, and says so.
 */
export async function catchUpIndex(client: SidecarClient): Promise<void> {
  const status = await client.indexStatus().catch(() => undefined);
  const interrupted = status?.rebuildCheckpoint;
  if (interrupted) {
    const done = interrupted.files ? ` (${interrupted.files} files were already indexed)` : '';
    void vscode.window.showInformationMessage(
      `REPLUG: resuming the rebuild of the index that was interrupted${done}. The previous index answers searches until it is done.`,
    );
  }
  const loud = interrupted !== undefined || status?.passages === 0;
  await indexWorkspace(client, interrupted !== undefined, loud ? vscode.ProgressLocation.Notification : vscode.ProgressLocation.Window);
}

/** What an index job did, in words; counts only (nothing in it is untrusted). */
function indexSummary(result: IndexOutcome, rebuild: boolean): string {
  if (result.cancelled) return rebuild ? 'Rebuild cancelled; the previous index is kept.' : 'Indexing cancelled; what was done so far is kept.';
  const resumed = [
    result.resumedAfterRestarts ? 'The sidecar stopped during the job and was restarted; the job resumed from its last checkpoint. ' : '',
    result.resumedRebuild ? `Continued the interrupted rebuild from its checkpoint of ${result.resumedRebuild.files} files. ` : '',
  ].join('');
  return `${resumed}Indexed ${result.files} files into ${result.passages} passages (${result.filesChanged} changed) in ${result.seconds.toFixed(1)} s.`;
}

/** Why Isn't This File Indexed?, for the file picked in the explorer, else the active editor's. */
async function explainFile(sidecar: SidecarClient, target: unknown): Promise<FileExplanation | undefined> {
  const uri = target instanceof vscode.Uri ? target : vscode.window.activeTextEditor?.document.uri;
  if (uri?.scheme !== 'file') {
    void vscode.window.showInformationMessage('REPLUG: open a file (or pick one in the Explorer) to ask why it is or is not indexed.');
    return undefined;
  }
  try {
    const why = await sidecar.explainFile(uri.fsPath);
    const { text, settings } = explanationText(vscode.workspace.asRelativePath(uri), why);
    const actions = settings ? ['Open Settings'] : why.state === 'not-indexed' ? ['Index Workspace'] : [];
    void vscode.window.showInformationMessage(text, ...actions).then((choice) => {
      if (choice === 'Open Settings') void vscode.commands.executeCommand('workbench.action.openSettings', settings);
      if (choice === 'Index Workspace') void vscode.commands.executeCommand('replugCode.indexWorkspace');
    });
    return why;
  } catch (err) {
    void reportFailure('explaining the file', err);
    return undefined;
  }
}

async function needsSidecar<T>(sidecar: SidecarClient, run: () => Promise<T>): Promise<T | undefined> {
  if (!(await sidecar.runningAfterStart())) {
    if ((await showWithLog('warning', 'REPLUG: the sidecar is not running.', 'Restart')) === 'Restart') await sidecar.restart();
    return undefined;
  }
  return run();
}
