import * as assert from 'node:assert/strict';
import * as vscode from 'vscode';
import { startScriptedLm } from '../fixtures/lm/scripted-lm';
import { activateReplug, eventually, withDenseIndex } from './helpers';
import { clearNotifications, notificationShown, ui } from './ui';

const KEY = 'sk-test-0123456789';
const INPUT = '.quick-input-widget .quick-input-box input';

/** Runs Set LM API Key as a person would: the server it is for (replacing the prefilled URL when given), then the key. */
async function setApiKey(key: string, server?: string): Promise<void> {
  const done = vscode.commands.executeCommand('replugCode.setLmApiKey');
  await eventually(async () => (await ui.elements('.quick-input-widget .quick-input-title')).find((t) => t.text.includes('(1/2)')), 'the server prompt');
  if (server !== undefined) await ui.fill(INPUT, server);
  await ui.press('Enter');
  await eventually(async () => (await ui.elements('.quick-input-widget .quick-input-title')).find((t) => t.text.includes('(2/2)')), 'the key prompt');
  await ui.fill(INPUT, key);
  await ui.press('Enter');
  await done;
}

const keyed = (seen: { authorization?: string }[]) => seen.filter((r) => r.authorization === `Bearer ${KEY}`).length;

/** A link that, clicked in a notification, would open a terminal: it must reach the user as text. */
const PAYLOAD = '[click](command:workbench.action.terminal.new)';

suite('a hostile LM endpoint', () => {
  let lm: Awaited<ReturnType<typeof startScriptedLm>>;
  let undoSettings: () => Promise<void>;

  suiteSetup(async () => {
    const api = await activateReplug();
    lm = await startScriptedLm({ status: 400, body: { error: { message: PAYLOAD, type: 'BadRequestError' } } });
    undoSettings = await withDenseIndex(api, {
      'lm.baseUrl': lm.url,
      'lm.model': 'hostile',
      'eval.fileShare': 0.5,
      'eval.maxQueries': 2,
      'training.k': 4,
    });
  });

  suiteTeardown(async () => {
    await undoSettings?.();
    await lm?.close();
  });

  test('an error body with a command link is shown as text, never as a live link (Evaluate Retriever)', async () => {
    await clearNotifications();
    await vscode.commands.executeCommand('replugCode.evaluateRetriever');
    assert.ok(lm.seen.length > 0, 'the evaluation reached the endpoint');
    const toast = await notificationShown((text) => text.includes('evaluation failed'), 'the evaluation failure');
    await ui.screenshot('hostile-lm-error');
    assert.deepEqual(toast.links, [], `no link in: ${toast.text}`);
    assert.match(toast.text, /\[click\] \(command:workbench\.action\.terminal\.new\)/);
  });

  // VS Code refuses modal dialogs while it runs extension tests (as if dismissed), so these tests check the
  // cautious default; scripts/e2e-vscode.ts answers the same questions as a person would.
  test('a base URL chosen by the workspace settings is not used unasked', async () => {
    const elsewhere = await startScriptedLm({ status: 400, body: { error: { message: 'nope' } } });
    const config = vscode.workspace.getConfiguration('replugCode');
    try {
      await config.update('lm.baseUrl', elsewhere.url, vscode.ConfigurationTarget.Workspace);
      assert.equal(await vscode.commands.executeCommand('replugCode.evaluateRetriever'), undefined);
      assert.deepEqual(elsewhere.seen, [], 'no request went to the workspace URL');
    } finally {
      await config.update('lm.baseUrl', undefined, vscode.ConfigurationTarget.Workspace);
      await elsewhere.close();
    }
  });

  test('the API key goes with requests to the server it was entered for, and nowhere else unasked', async () => {
    const elsewhere = await startScriptedLm({ status: 400, body: { error: { message: 'nope' } } });
    const config = vscode.workspace.getConfiguration('replugCode');
    const own = config.get<string>('lm.baseUrl')!;
    try {
      await setApiKey(KEY); // for the base URL in effect, prefilled
      await vscode.commands.executeCommand('replugCode.evaluateRetriever');
      assert.ok(keyed(lm.seen) > 0, 'the key reached the server it was entered for');

      await config.update('lm.baseUrl', elsewhere.url, vscode.ConfigurationTarget.Global);
      await vscode.commands.executeCommand('replugCode.evaluateRetriever');
      assert.equal(keyed(elsewhere.seen), 0, 'the key was not sent to another origin');
    } finally {
      await config.update('lm.baseUrl', own, vscode.ConfigurationTarget.Global);
      await setApiKey('');
      await elsewhere.close();
    }
  });

  test('a training run the LM fails says which endpoint and model, and what to check (not just 404 "nope")', async () => {
    const nope = await startScriptedLm({ status: 404, body: 'nope' });
    const config = vscode.workspace.getConfiguration('replugCode');
    try {
      await config.update('lm.baseUrl', nope.url, vscode.ConfigurationTarget.Global);
      await clearNotifications();
      await vscode.commands.executeCommand('replugCode.trainRetriever');
      const toast = await notificationShown((text) => /training failed/.test(text) && text.includes(nope.url), 'the training failure');
      await ui.screenshot('training-lm-404');
      assert.ok(nope.seen.length > 0);
      assert.match(toast.text, /model "hostile"/);
      assert.match(toast.text, /nope/);
      assert.match(toast.text, /Check that replugCode\.lm\.baseUrl is the server.s Open/); // a 404 on GET /models: the URL, not the model
    } finally {
      await config.update('lm.baseUrl', lm.url, vscode.ConfigurationTarget.Global);
      await nope.close();
    }
  });
});
