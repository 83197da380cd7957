import * as assert from 'node:assert/strict';
import { join } from 'node:path';
import * as vscode from 'vscode';
import type { FileExplanation } from '../../sidecar/server/protocol';
import { activateReplug, eventually, workspaceRoot } from './helpers';
import { clearNotifications, notificationShown, ui } from './ui';

suite('"Why Isn\'t This File Indexed?"', () => {
  const file = (rel: string) => vscode.Uri.file(join(workspaceRoot(), rel));
  const created = ['package-lock.json', '.vscode/extensions.json'];

  suiteSetup(async () => {
    const api = await activateReplug();
    await vscode.workspace.fs.writeFile(file('package-lock.json'), Buffer.from('{ "lockfileVersion": 3 }\n'));
    await vscode.workspace.fs.writeFile(file('.vscode/extensions.json'), Buffer.from('{ "recommendations": [] }\n'));
    await eventually(() => Promise.resolve().then(() => api.index([workspaceRoot()])).catch(() => undefined), 'the workspace to be indexed', 60_000);
  });

  suiteTeardown(async () => {
    for (const rel of created) await vscode.workspace.fs.delete(file(rel));
  });

  const ask = async (rel: string) => {
    await clearNotifications();
    return vscode.commands.executeCommand<FileExplanation | undefined>('replugCode.explainFile', file(rel));
  };

  test('answers for an indexed file, a skipped one and an excluded one, in a notification', async () => {
    const indexed = await ask('src/geometry/shapes.py');
    assert.equal(indexed?.state, 'indexed');
    await notificationShown((text) => /src\/geometry\/shapes\.py is indexed \(\d+ passages?\)/.test(text), 'the indexed answer');

    assert.deepEqual(await ask('package-lock.json'), { state: 'skipped', reason: 'lock-file' });
    await notificationShown((text) => text.includes('package-lock.json is not indexed: it is a dependency lock file'), 'the skip answer');

    assert.deepEqual(await ask('.vscode/extensions.json'), { state: 'excluded', by: 'default-exclude', pattern: '**/.vscode/**' });
    await notificationShown((text) => text.includes('the built-in exclude **/.vscode/** leaves out'), 'the exclusion answer');
    await ui.screenshot('why-not-indexed');
  });
});
