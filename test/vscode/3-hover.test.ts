import * as assert from 'node:assert/strict';
import { join } from 'node:path';
import * as vscode from 'vscode';
import { activateReplug, replugHover, workspaceRoot } from './helpers';

suite('hover', () => {
  test('hovering an identifier shows related snippets from elsewhere, not the hovered span', async () => {
    const api = await activateReplug();
    await api.index([workspaceRoot()]);
    const file = join(workspaceRoot(), 'src/geometry/shapes.py');
    const doc = await vscode.workspace.openTextDocument(file);
    const line = doc.getText().split('\n').findIndex((l) => l.includes('def total_area'));
    const markdown = await replugHover(doc.uri, new vscode.Position(line, doc.lineAt(line).text.indexOf('total_area') + 2));
    assert.ok(markdown, 'a REPLUG hover is shown');
    const links = [...markdown.matchAll(/\]\((file:[^)#]+)#L(\d+)\)/g)];
    assert.ok(links.length >= 1 && links.length <= 3, `1 to 3 snippets, got ${links.length}`);
    // Labels are "path:start-end" (markdown-escaped); none may be a passage covering the hovered line.
    const spans = [...markdown.matchAll(/\[([^\]]+?):(\d+)\\-(\d+)\]/g)].map((m) => ({
      path: m[1]!.replace(/\\(.)/g, '$1'),
      start: Number(m[2]),
      end: Number(m[3]),
    }));
    assert.equal(spans.length, links.length);
    for (const span of spans) {
      const sameFile = span.path === vscode.workspace.asRelativePath(file);
      assert.ok(!sameFile || span.end < line + 1 || span.start > line + 1, `hovered span excluded: ${JSON.stringify(span)}`);
    }
  });
});
