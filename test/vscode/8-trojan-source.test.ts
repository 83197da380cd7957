import * as assert from 'node:assert/strict';
import { join } from 'node:path';
import * as vscode from 'vscode';
import { activateReplug, eventually, replugHover, workspaceRoot } from './helpers';
import { ui } from './ui';

const RLO = '\u202E';
const LRI = '\u2066';
const PDI = '\u2069';
const BIDI = /[\u202A-\u202E\u2066-\u2069\u200E\u200F\u061C]/;
const MARKER = 'trojanQuokkaMarker';

const CALLER_LINE = `export const uses = '${MARKER}';`;
/** Displays as "invoicests.png" where bidi controls are obeyed. */
const TROJAN_FILE = `src/invoice${RLO}gnp.ts`;
const TROJAN_CODE = [
  `// ${MARKER}: who may delete accounts`,
  'const isAdmin = false;',
  `/*${RLO} } ${LRI}if (isAdmin)${PDI} ${LRI} begin admins only */`,
  'deleteAllAccounts();',
].join('\n');

suite('Trojan Source: bidi controls in code and file names are shown, not obeyed', () => {
  const trojan = () => vscode.Uri.file(join(workspaceRoot(), TROJAN_FILE));
  const caller = () => vscode.Uri.file(join(workspaceRoot(), 'src/caller.ts'));

  suiteSetup(async () => {
    const api = await activateReplug();
    await vscode.workspace.fs.writeFile(trojan(), Buffer.from(TROJAN_CODE));
    await vscode.workspace.fs.writeFile(caller(), Buffer.from(`${CALLER_LINE}\n`));
    await eventually(() => Promise.resolve().then(() => api.index([workspaceRoot()])).catch(() => undefined), 'the workspace to be indexed', 60_000);
  });

  suiteTeardown(async () => {
    await vscode.commands.executeCommand('workbench.action.closeQuickOpen');
    for (const uri of [trojan(), caller()]) await vscode.workspace.fs.delete(uri);
  });

  test('Search Code (quick pick) shows [U+202E] in the label and the snippet line', async () => {
    void vscode.commands.executeCommand('replugCode.search', MARKER);
    const row = await eventually(
      async () => (await ui.elements('.quick-input-list .monaco-list-row')).find((r) => r.text.includes('invoice')),
      'the quick pick row of the file',
    );
    await ui.screenshot('trojan-quick-pick');
    await ui.press('Escape');
    assert.ok(row.text.includes('invoice[U+202E]gnp.ts'), row.text);
    assert.doesNotMatch(row.text, BIDI);
  });

  test('the Search panel shows them in labels and snippets', async () => {
    await vscode.commands.executeCommand('replugCode.searchView.focus');
    await eventually(() => ui.fill('#query', MARKER, true).catch(() => undefined), 'the search panel');
    const hit = await eventually(async () => (await ui.elements('.hit', true)).find((h) => h.text.includes('invoice')), 'the hit in the panel');
    await ui.screenshot('trojan-search-panel');
    assert.ok(hit.text.includes('invoice[U+202E]gnp.ts'), hit.text);
    assert.ok(hit.text.includes('/*[U+202E] } [U+2066]if (isAdmin)[U+2069] [U+2066] begin admins only */'), hit.text);
    assert.doesNotMatch(hit.text, BIDI);
  });

  test('the hover shows them in labels and code', async () => {
    const markdown = await replugHover(caller(), new vscode.Position(0, CALLER_LINE.indexOf(MARKER) + 3));
    assert.ok(markdown, 'a REPLUG hover is shown');
    assert.ok(markdown.includes('invoice\\[U\\+202E\\]gnp'), markdown);
    assert.ok(markdown.includes('if (isAdmin)[U+2069]'), markdown);
    assert.doesNotMatch(markdown, BIDI);
  });
});
