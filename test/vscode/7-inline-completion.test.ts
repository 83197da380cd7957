import * as assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as vscode from 'vscode';
import { LmServer } from '../../sidecar/lm/serve';
import type { CompletionHit } from '../../sidecar/server/protocol';
import { CopyLm } from '../fixtures/lm/copy-lm';
import { startInterposer } from '../fixtures/lm/interposer';
import { activateReplug, eventually, workspaceRoot } from './helpers';

/** A new file whose last line a passage of src/geometry/shapes.py continues. */
const PROMPT = 'def areas_added(shapes) -> float:\n    """Sum of the areas of all shapes."""\n    return sum(shape.area() for';

suite('inline completions', () => {
  let lm: LmServer;
  let proxy: Awaited<ReturnType<typeof startInterposer>>;
  let file: string;

  suiteSetup(async () => {
    const api = await activateReplug();
    await api.index([workspaceRoot()]);
    lm = new LmServer(new CopyLm('copy-lm', 16384));
    // Counts the requests that reach the LM.
    proxy = await startInterposer(await lm.listen(), () => false);
    const config = vscode.workspace.getConfiguration('replugCode');
    await config.update('lm.baseUrl', proxy.url, vscode.ConfigurationTarget.Global);
    await config.update('lm.model', 'copy-lm', vscode.ConfigurationTarget.Global);
    file = join(workspaceRoot(), 'src/geometry/areas.py');
    writeFileSync(file, PROMPT);
  });

  suiteTeardown(async () => {
    const config = vscode.workspace.getConfiguration('replugCode');
    for (const key of ['lm.baseUrl', 'lm.model', 'inlineCompletion.enabled', 'inlineCompletion.maxTokens']) {
      await config.update(key, undefined, vscode.ConfigurationTarget.Global);
    }
    await proxy?.close();
    await lm?.close();
  });

  /** Opens the prompt file with the cursor at its end. */
  async function openAtEnd(): Promise<vscode.TextEditor> {
    const doc = await vscode.workspace.openTextDocument(file);
    const editor = await vscode.window.showTextDocument(doc);
    const end = doc.lineAt(doc.lineCount - 1).range.end;
    // A new document version: VS Code reuses the (possibly empty) answer of a request at the same version and place.
    await editor.edit((e) => e.insert(end, ' '));
    await editor.edit((e) => e.delete(new vscode.Range(end, end.translate(0, 1))));
    editor.selection = new vscode.Selection(end, end);
    return editor;
  }

  test('off by default: no provider, no LM request', async () => {
    assert.equal(vscode.workspace.getConfiguration('replugCode').get('inlineCompletion.enabled'), false);
    await openAtEnd();
    await vscode.commands.executeCommand('editor.action.inlineSuggest.trigger');
    await new Promise((r) => setTimeout(r, 1500));
    await vscode.commands.executeCommand('editor.action.inlineSuggest.commit');
    assert.equal(proxy.counts.get('/v1/completions') ?? 0, 0);
    assert.equal(vscode.window.activeTextEditor?.document.getText(), PROMPT);
  });

  test('toggled on, a suggestion from the REPLUG ensemble is accepted into the file; its passages show in the Search panel', async () => {
    const enabled = await vscode.commands.executeCommand<boolean>('replugCode.toggleInlineCompletion');
    assert.equal(enabled, true);
    const editor = await openAtEnd();
    // Resolves once the providers have answered.
    await vscode.commands.executeCommand('editor.action.inlineSuggest.trigger');
    const text = await eventually(async () => {
      await vscode.commands.executeCommand('editor.action.inlineSuggest.commit');
      const now = editor.document.getText();
      return now !== PROMPT ? now : undefined;
    }, 'an inline suggestion to accept', 60_000);
    const suggestion = text.slice(PROMPT.length);
    assert.ok(text.startsWith(PROMPT), JSON.stringify(text));
    // The copy-LM continues as the passage in shapes.py does.
    assert.ok(suggestion.startsWith(' shape in shapes'), JSON.stringify(suggestion));
    assert.ok(!suggestion.includes('\n\n'), 'stops at a blank line');
    assert.ok((proxy.counts.get('/v1/completions') ?? 0) > 0);

    const hits = await vscode.commands.executeCommand<CompletionHit[]>('replugCode.showCompletionPassages');
    assert.ok(hits.length > 0);
    assert.ok(hits.some((h) => h.path.endsWith('shapes.py')), JSON.stringify(hits.map((h) => h.path)));
    assert.ok(hits.every((h) => h.path !== file), 'never a passage of the prompt itself');
    assert.ok(Math.abs(hits.reduce((s, h) => s + h.weight, 0) - 1) < 1e-9);
    await vscode.commands.executeCommand('undo');
    await editor.document.save();
  });

  test('typing cancels the pending completion: the sidecar stops asking the LM', async () => {
    await vscode.workspace.getConfiguration('replugCode').update('inlineCompletion.maxTokens', 256, vscode.ConfigurationTarget.Global);
    const editor = await openAtEnd();
    const before = proxy.counts.get('/v1/completions') ?? 0;
    // Not awaited: the command resolves only when the completion is done.
    void vscode.commands.executeCommand('editor.action.inlineSuggest.trigger');
    await eventually(async () => ((proxy.counts.get('/v1/completions') ?? 0) > before + 4 ? true : undefined), 'the completion to start', 30_000);
    // The edit cancels the long completion and asks for a new one, kept short here so that it ends by itself.
    await vscode.workspace.getConfiguration('replugCode').update('inlineCompletion.maxTokens', 2, vscode.ConfigurationTarget.Global);
    await vscode.commands.executeCommand('type', { text: ' ' });
    let last = -1;
    await eventually(async () => {
      await new Promise((r) => setTimeout(r, 1500));
      const now = proxy.counts.get('/v1/completions') ?? 0;
      const settled = now === last;
      last = now;
      return settled ? true : undefined;
    }, 'LM requests to stop', 60_000);
    // A 256-token completion with k = 4 would take over a thousand requests.
    assert.ok(last - before < 600, `${last - before} LM requests`);
    await vscode.commands.executeCommand('undo');
    await editor.document.save();
    await vscode.commands.executeCommand<boolean>('replugCode.toggleInlineCompletion');
  });

  test('the toggle turns off completions a workspace setting turned on (that value outranks the user setting)', async () => {
    const config = () => vscode.workspace.getConfiguration('replugCode');
    const userValue = config().inspect('inlineCompletion.enabled')?.globalValue;
    await config().update('inlineCompletion.enabled', true, vscode.ConfigurationTarget.Workspace);
    try {
      assert.equal(await vscode.commands.executeCommand<boolean>('replugCode.toggleInlineCompletion'), false);
      assert.equal(config().get('inlineCompletion.enabled'), false, 'the toggle said off, and off it is');
      assert.equal(config().inspect('inlineCompletion.enabled')?.globalValue, userValue, 'the user setting is left alone');
    } finally {
      await config().update('inlineCompletion.enabled', undefined, vscode.ConfigurationTarget.Workspace);
    }
  });
});
