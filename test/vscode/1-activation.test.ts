import * as assert from 'node:assert/strict';
import * as vscode from 'vscode';
import { activateReplug, EXTENSION_ID } from './helpers';

suite('activation', () => {
  test('activates, starts the sidecar and reports a healthy status', async () => {
    const api = await activateReplug();
    assert.ok(vscode.extensions.getExtension(EXTENSION_ID)?.isActive);
    const status = await api.indexStatus();
    assert.equal(typeof status.files, 'number');
    // The index lives in workspace storage, never inside the repository.
    assert.ok(!status.dir.startsWith(vscode.workspace.workspaceFolders![0]!.uri.fsPath), status.dir);
    assert.notEqual(api.status.health, 'error', api.status.message);
  });

  test('registers every REPLUG command', async () => {
    const all = new Set(await vscode.commands.getCommands(true));
    for (const id of [
      'replugCode.indexWorkspace',
      'replugCode.rebuildIndex',
      'replugCode.search',
      'replugCode.retrieveAtCursor',
      'replugCode.showLog',
      'replugCode.restartSidecar',
    ]) {
      assert.ok(all.has(id), `${id} is registered`);
    }
  });
});
