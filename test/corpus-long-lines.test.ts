import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { DEFAULT_CHUNKING, estimateTokens } from '../sidecar/corpus/chunk';
import { WorkspaceIndex } from '../sidecar/index/workspace-index';
import { makeTree } from './helpers/temp-tree';

const TEN_MB = 10 * 1024 * 1024;

/** One line of distinct identifiers and punctuation, `bytes` long, so no two pieces of it are alike. */
function longLine(bytes: number, salt: string): string {
  const parts: string[] = [];
  let length = 0;
  for (let i = 0; length < bytes; i++) {
    const part = i % 5 === 4 ? `${salt}${i.toString(36)}(x, y);` : `${salt}Value${i.toString(36)}`;
    parts.push(part);
    length += part.length + 1;
  }
  return parts.join(' ').slice(0, bytes);
}

test('a 10 MB CSV cell and a 10 MB single-line file are indexed whole, in budget-sized pieces', { timeout: 600_000 }, async () => {
  const cell = longLine(TEN_MB, 'csv');
  const source = longLine(TEN_MB, 'src');
  const tree = makeTree({ 'corpus.csv': `id,text\nbig,"${cell}"\nsmall,a short row\n`, 'notes/one-line.txt': source });
  const dir = mkdtempSync(path.join(tmpdir(), 'replug-long-'));
  try {
    const index = await WorkspaceIndex.open(dir, { maxFileBytes: 2 * TEN_MB });
    const report = await index.update([path.join(tree.root, 'notes')], { csv: [path.join(tree.root, 'corpus.csv')] });
    assert.equal(report.files, 2);
    const passages = index.passages();
    for (const [what, text, startLine] of [['CSV cell', cell, 2], ['file', source, 1]] as const) {
      const pieces = passages.filter((p) => (what === 'file' ? p.path.endsWith('one-line.txt') : p.docId === 'big'));
      assert.ok(pieces.length > 1000, `${what}: cut into many pieces`);
      // In order and without a gap or overlap: the pieces are the line.
      assert.equal(pieces.map((p) => p.text).join(''), text, `${what}: pieces rejoin to the line`);
      for (const piece of pieces) {
        assert.ok(estimateTokens(piece.text) <= DEFAULT_CHUNKING.maxTokens, `${what}: a piece over the budget`);
        assert.deepEqual([piece.startLine, piece.endLine], [startLine, startLine]);
      }
      // Pieces end at whitespace, so identifiers stay whole.
      for (const piece of pieces.slice(0, -1)) assert.match(piece.text, /\s$/, what);
    }
    const needle = 'csvValue' + (400_000).toString(36);
    const [hit] = await index.search(needle, { k: 1 });
    assert.match(hit.passage.text, new RegExp(`\\b${needle}\\b`));
    await index.close();
  } finally {
    tree.cleanup();
    rmSync(dir, { recursive: true, force: true });
  }
});
