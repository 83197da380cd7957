import * as assert from 'node:assert/strict';
import { join } from 'node:path';
import * as vscode from 'vscode';
import { activateReplug, replugHover, workspaceRoot } from './helpers';

/** An identifier defined at the top of a file and used again far below it, and in one other file. */
const DEFINING = [
  'def wombat_rank(scores):',
  '    """Ranks scores from best to worst."""',
  '    return sorted(scores, reverse=True)',
  ...Array.from({ length: 60 }, (_, i) => `filler_${i} = ${i}`),
  'best = wombat_rank([3, 1, 2])[0]',
].join('\n');
const USING = 'from ranking import wombat_rank\n\nprint(wombat_rank([5, 4]))\n';

suite('hover', () => {
  test('hovering an identifier shows related snippets from other files only', async () => {
    const api = await activateReplug();
    const defining = vscode.Uri.file(join(workspaceRoot(), 'src/text/ranking.py'));
    const using = vscode.Uri.file(join(workspaceRoot(), 'src/text/report.py'));
    await vscode.workspace.fs.writeFile(defining, Buffer.from(DEFINING));
    await vscode.workspace.fs.writeFile(using, Buffer.from(USING));
    try {
      await api.index([workspaceRoot()]);
      const markdown = await replugHover(defining, new vscode.Position(0, 'def wombat_rank'.length - 2));
      assert.ok(markdown, 'a REPLUG hover is shown');
      assert.match(markdown, /related code in other files/);
      const links = [...markdown.matchAll(/\]\((file:[^)#]+)#L(\d+)\)/g)];
      assert.ok(links.length >= 1 && links.length <= 3, `1 to 3 snippets, got ${links.length}`);
      const paths = links.map((link) => vscode.Uri.parse(link[1]!).fsPath);
      assert.ok(paths.includes(using.fsPath), `the other file's use is shown: ${paths.join(', ')}`);
      // The use 60 lines further down the hovered file is not "other code": the user has that file open.
      assert.ok(paths.every((p) => p !== defining.fsPath), `no passage of the hovered file: ${paths.join(', ')}`);
      // Labels are "path:start-end", markdown-escaped.
      assert.match(markdown, /\[src\/text\/report\\\.py:\d+\\-\d+\]/);
    } finally {
      for (const uri of [defining, using]) await vscode.workspace.fs.delete(uri);
    }
  });
});
