import * as assert from 'node:assert/strict';
import { join } from 'node:path';
import * as vscode from 'vscode';
import { activateReplug, eventually, workspaceRoot } from './helpers';
import { clearNotifications, notificationShown, ui } from './ui';

suite('an encoder setting that cannot be loaded', () => {
  const model = () => join(workspaceRoot(), '..', 'no-such-encoder');

  suiteTeardown(async () => {
    await vscode.workspace.getConfiguration('replugCode').update('encoder.model', undefined, vscode.ConfigurationTarget.Global);
  });

  test('indexing and search fall back to BM25, with a warning that names the model and the fix', async () => {
    const api = await activateReplug();
    await clearNotifications();
    await vscode.workspace.getConfiguration('replugCode').update('encoder.model', model(), vscode.ConfigurationTarget.Global);
    // The setting restarts the sidecar, which re-indexes: lexically, not at all.
    const hits = await eventually(
      async () => {
        const found = await Promise.resolve().then(() => api.search({ query: 'convex hull monotone chain', k: 3 })).catch(() => undefined);
        return found?.length && api.status.encoderFallback ? found : undefined;
      },
      'a lexical search after the restart',
      60_000,
    );
    assert.equal(hits[0]?.path, join(workspaceRoot(), 'src/geometry/convex_hull.py'));
    assert.equal(api.status.encoderFallback?.model, model());
    assert.match(api.status.message ?? '', /lexical search only/);

    const toast = await notificationShown((text) => text.includes('could not be loaded'), 'the encoder warning');
    await ui.screenshot('broken-encoder-warning');
    assert.ok(toast.text.includes(model()), toast.text);
    assert.match(toast.text, /BM25 \(lexical\) only/);
    assert.match(toast.text, /REPLUG › Encoder: Model/);
    const everything = (await ui.notifications()).map((n) => n.text).join('\n');
    assert.doesNotMatch(everything, /indexing failed/i, 'no failure: indexing went on lexically');
    assert.doesNotMatch(everything, /failed: \w+ failed:/i, 'no doubled prefixes');
  });
});
