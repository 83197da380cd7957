import * as assert from 'node:assert/strict';
import { join } from 'node:path';
import * as vscode from 'vscode';
import type { IndexResult } from '../../sidecar/server/protocol';
import { activateReplug, eventually, workspaceRoot } from './helpers';

suite('indexing and search', () => {
  test('"Index Workspace" indexes every fixture file', async () => {
    await activateReplug();
    const result = await vscode.commands.executeCommand<IndexResult | undefined>('replugCode.indexWorkspace');
    assert.ok(result && !result.cancelled, 'the command returns the finished job');
    assert.equal(result.files, 6);
    assert.ok(result.passages >= 6);
  });

  test('search ranks the file that implements the query first, with 1-based line ranges', async () => {
    const api = await activateReplug();
    const hits = await api.search({ query: 'convex hull monotone chain', k: 5 });
    const hull = join(workspaceRoot(), 'src/geometry/convex_hull.py');
    assert.equal(hits[0]?.path, hull);
    assert.ok(hits[0]!.startLine >= 1);
    const doc = await vscode.workspace.openTextDocument(hull);
    assert.ok(hits[0]!.endLine <= doc.lineCount);
    assert.equal(doc.getText(new vscode.Range(hits[0]!.startLine - 1, 0, hits[0]!.startLine, 0)).trimEnd(), hits[0]!.text.split('\n')[0]);
  });

  test('saving a new file and deleting it reach the index through the file watcher', async () => {
    const api = await activateReplug();
    const uri = vscode.Uri.file(join(workspaceRoot(), 'src/text/levenshtein.ts'));
    const code = 'export function levenshteinDistanceWombat(a: string, b: string): number {\n  return Math.abs(a.length - b.length);\n}\n';
    await vscode.workspace.fs.writeFile(uri, Buffer.from(code));
    await eventually(async () => {
      const hits = await api.search({ query: 'levenshteinDistanceWombat', k: 1 });
      return hits[0]?.path === uri.fsPath ? hits : undefined;
    }, 'the new file to be indexed');

    await vscode.workspace.fs.delete(uri);
    await eventually(async () => {
      const hits = await api.search({ query: 'levenshteinDistanceWombat', k: 3 });
      return hits.every((h) => h.path !== uri.fsPath) ? true : undefined;
    }, 'the deleted file to leave the index');
  });
});
