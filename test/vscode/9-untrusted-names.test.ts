import * as assert from 'node:assert/strict';
import { join } from 'node:path';
import * as vscode from 'vscode';
import { activateReplug, eventually, replugHover, workspaceRoot } from './helpers';
import { searchInPanel, ui, type UiElement } from './ui';

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

/** Icon syntax in a file name and in code: the quick pick would draw a zap and a terminal icon. */
const ICON_FILE = 'src/$(zap)notes.ts';
const ICON_CODE = `// ${MARKER} run $(terminal) now\n`;

/** Runs Search Code for `query` and returns the row that shows `expected`, as drawn (then closes the quick pick). */
async function quickPickRow(query: string, expected: string, screenshot: string): Promise<UiElement> {
  void vscode.commands.executeCommand('replugCode.search', query);
  const row = await eventually(
    async () => (await ui.elements('.quick-input-list .monaco-list-row')).find((r) => r.text.includes(expected)),
    `the quick pick row of ${expected}`,
  );
  await ui.screenshot(screenshot);
  await ui.press('Escape');
  return row;
}

suite('untrusted names: bidi controls are shown, not obeyed; icon syntax is text', () => {
  const trojan = () => vscode.Uri.file(join(workspaceRoot(), TROJAN_FILE));
  const caller = () => vscode.Uri.file(join(workspaceRoot(), 'src/caller.ts'));
  const iconic = () => vscode.Uri.file(join(workspaceRoot(), ICON_FILE));

  suiteSetup(async () => {
    const api = await activateReplug();
    await vscode.workspace.fs.writeFile(trojan(), Buffer.from(TROJAN_CODE));
    await vscode.workspace.fs.writeFile(caller(), Buffer.from(`${CALLER_LINE}\n`));
    await vscode.workspace.fs.writeFile(iconic(), Buffer.from(ICON_CODE));
    await eventually(() => Promise.resolve().then(() => api.index([workspaceRoot()])).catch(() => undefined), 'the workspace to be indexed', 60_000);
  });

  suiteTeardown(async () => {
    await vscode.commands.executeCommand('workbench.action.closeQuickOpen');
    for (const uri of [trojan(), caller(), iconic()]) await vscode.workspace.fs.delete(uri);
  });

  test('Search Code (quick pick) shows [U+202E] in the label and the snippet line', async () => {
    const row = await quickPickRow(MARKER, 'invoice', 'trojan-quick-pick');
    assert.ok(row.text.includes('invoice[U+202E]gnp.ts'), row.text);
    assert.doesNotMatch(row.text, BIDI);
  });

  test('Search Code (quick pick) shows $(name) in file names and code as text, not as icons', async () => {
    const row = await quickPickRow(`${MARKER} run now`, 'notes.ts', 'icon-syntax-quick-pick');
    assert.ok(row.text.includes('src/$(zap)notes.ts'), row.text);
    assert.ok(row.text.includes('run $(terminal) now'), row.text);
    assert.deepEqual(row.icons.filter((icon) => icon === 'codicon-zap' || icon === 'codicon-terminal'), [], row.icons.join(' '));
  });

  test('the Search panel shows them in labels and snippets', async () => {
    const hit = await searchInPanel(MARKER, 'invoice');
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
