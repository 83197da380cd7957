import * as assert from 'node:assert/strict';
import { join } from 'node:path';
import * as vscode from 'vscode';
import { activateReplug, eventually, workspaceRoot } from './helpers';
import { searchInPanel, ui } from './ui';

const MARKER = 'layoutQuokkaMarker';

suite('the Search panel in a narrow side bar', () => {
  const file = () =>
    vscode.Uri.file(join(workspaceRoot(), 'src/a_rather/deeply_nested/folder_structure/with_long_names/extremely_long_module_name_for_layout_checks.ts'));

  suiteTeardown(async () => {
    await vscode.workspace.fs.delete(vscode.Uri.file(join(workspaceRoot(), 'src/a_rather')), { recursive: true });
  });

  test('a long path keeps its line range in view, and long code lines wrap instead of running off the edge', async () => {
    const api = await activateReplug();
    // A 200-character line: far wider than the side bar, short of what the corpus treats as minified.
    const code = [`export const ${MARKER} = ${JSON.stringify('wide '.repeat(36))};`, ...Array.from({ length: 6 }, (_, i) => `export const n${i} = ${i};`)];
    await vscode.workspace.fs.writeFile(file(), Buffer.from(code.join('\n')));
    await eventually(() => Promise.resolve().then(() => api.index([workspaceRoot()])).catch(() => undefined), 'the workspace to be indexed', 60_000);
    await searchInPanel(MARKER, 'extremely_long_module');
    await ui.screenshot('search-panel-long-path');
    const parts = await ui.elements('.hit-header, .hit-label, .hit-code', true);
    assert.ok(parts.length >= 3);
    for (const part of parts) assert.equal(part.overflowsX, false, `cut off on the right: ${part.text.slice(0, 120)}`);
    const lines = await ui.elements('.hit-lines', true);
    assert.ok(lines.some((l) => l.text === ':1-7'), lines.map((l) => l.text).join(' '));
  });
});
