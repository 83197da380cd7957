import * as assert from 'node:assert/strict';
import * as vscode from 'vscode';
import { startScriptedLm } from '../fixtures/lm/scripted-lm';
import { activateReplug, eventually, withDenseIndex } from './helpers';
import { ui } from './ui';

/** A link that, clicked in a notification, would open a terminal: it must reach the user as text. */
const PAYLOAD = '[click](command:workbench.action.terminal.new)';

suite('a hostile LM endpoint', () => {
  let lm: Awaited<ReturnType<typeof startScriptedLm>>;
  let undoSettings: () => Promise<void>;

  suiteSetup(async () => {
    const api = await activateReplug();
    lm = await startScriptedLm({ status: 400, body: { error: { message: PAYLOAD, type: 'BadRequestError' } } });
    undoSettings = await withDenseIndex(api, { 'lm.baseUrl': lm.url, 'lm.model': 'hostile', 'eval.fileShare': 0.5, 'eval.maxQueries': 2 });
  });

  suiteTeardown(async () => {
    await undoSettings?.();
    await lm?.close();
  });

  test('an error body with a command link is shown as text, never as a live link (Evaluate Retriever)', async () => {
    await vscode.commands.executeCommand('replugCode.evaluateRetriever');
    assert.ok(lm.seen.length > 0, 'the evaluation reached the endpoint');
    const toast = await eventually(
      async () => (await ui.notifications()).find((n) => n.text.includes('evaluation failed')),
      'the failure notification',
    );
    await ui.screenshot('hostile-lm-error');
    assert.deepEqual(toast.links, [], `no link in: ${toast.text}`);
    assert.match(toast.text, /\[click\] \(command:workbench\.action\.terminal\.new\)/);
  });
});
