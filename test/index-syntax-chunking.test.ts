import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import type { ChunkingStrategy } from '../sidecar/corpus/file-chunker';
import { WorkspaceIndex } from '../sidecar/index/workspace-index';
import { FIXTURE_WORKSPACE } from './helpers/dense-index';

const CLI = [process.execPath, '--import', 'tsx', path.resolve(__dirname, '..', 'sidecar', 'cli', 'main.ts')];
const run = (...args: string[]) => spawnSync(CLI[0], [...CLI.slice(1), ...args], { encoding: 'utf8' });
const treeSitterLoaded = () => Object.keys(require.cache).some((file) => file.includes('tree-sitter-wasm'));

async function indexOnce(dir: string, strategy: ChunkingStrategy | undefined) {
  const index = await WorkspaceIndex.open(dir, strategy ? { chunking: { strategy } } : {});
  try {
    const report = await index.update([FIXTURE_WORKSPACE]);
    return { report, passages: index.passages() };
  } finally {
    await index.close();
  }
}

// First in this file: this process must not have loaded tree-sitter before.
test('indexing with line windows never loads the tree-sitter runtime; syntax chunking does', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'replug-syntax-index-'));
  try {
    await indexOnce(path.join(dir, 'lines'), 'lines');
    assert.equal(treeSitterLoaded(), false);
    // The default cuts the fixture's Python files by syntax.
    await indexOnce(path.join(dir, 'auto'), undefined);
    assert.equal(treeSitterLoaded(), true);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('changing the strategy rebuilds the index; none asked for keeps the stored one; the same one changes nothing', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'replug-syntax-index-'));
  try {
    const lines = await indexOnce(dir, 'lines');
    // An index built before `auto` became the default is not rebuilt by the new default.
    const kept = await indexOnce(dir, undefined);
    assert.equal(kept.report.rebuilt, undefined);
    assert.equal(kept.report.filesChanged, 0);
    const syntax = await indexOnce(dir, 'auto');
    assert.match(syntax.report.rebuilt ?? '', /chunking/);
    assert.equal(syntax.report.windowed, undefined);
    const shapes = (ps: typeof lines.passages) =>
      ps.filter((p) => p.path.endsWith('shapes.py')).map((p) => [p.startLine, p.endLine]).sort((a, b) => a[0] - b[0]);
    assert.deepEqual(shapes(lines.passages), [[1, 20], [11, 30], [21, 35], [31, 36]]);
    assert.deepEqual(shapes(kept.passages), shapes(lines.passages));
    assert.deepEqual(shapes(syntax.passages), [[1, 14], [17, 31], [34, 36]]);
    for (const strategy of ['auto', undefined]) {
      const again = await indexOnce(dir, strategy as ChunkingStrategy | undefined);
      assert.equal(again.report.rebuilt, undefined);
      assert.equal(again.report.filesChanged, 0);
      assert.deepEqual(shapes(again.passages), shapes(syntax.passages));
    }
    // Cutting TypeScript by syntax too changes only what the fingerprint says: the index is rebuilt.
    assert.match((await indexOnce(dir, 'syntax')).report.rebuilt ?? '', /chunking/);
    assert.match((await indexOnce(dir, 'lines')).report.rebuilt ?? '', /chunking/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a rebuild beside an index (Rebuild Index) takes the default; the index then keeps what it was given', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'replug-syntax-beside-'));
  try {
    await indexOnce(path.join(dir, 'live'), 'lines');
    const live = await WorkspaceIndex.open(path.join(dir, 'live'), {});
    try {
      assert.equal(live.pendingRebuild(), undefined); // kept lines: nothing to rebuild until asked
      const scratch = await WorkspaceIndex.open(path.join(dir, 'scratch'), {});
      try {
        await scratch.update([FIXTURE_WORKSPACE]);
        await live.replaceWith(scratch);
      } finally {
        await scratch.close();
      }
      // The saved manifest names the strategy the new contents were cut by.
      assert.match(live.storedManifest()?.chunking ?? '', /^auto\(python\)-/);
      const report = await live.update([FIXTURE_WORKSPACE]);
      assert.equal(report.rebuilt, undefined);
      assert.equal(report.filesChanged, 0);
      const shapes = live.passages().filter((p) => p.path.endsWith('shapes.py'));
      assert.deepEqual(shapes.map((p) => [p.startLine, p.endLine]).sort((a, b) => a[0] - b[0]), [[1, 14], [17, 31], [34, 36]]);
    } finally {
      await live.close();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('index --chunking: the strategy is kept when the flag is left out; an unknown one is an error', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'replug-syntax-cli-'));
  try {
    const first = run('index', FIXTURE_WORKSPACE, '--index-dir', dir, '--chunking', 'syntax');
    assert.equal(first.status, 0, first.stderr);
    assert.match(first.stdout, /→ 17 passages/);
    const again = run('index', FIXTURE_WORKSPACE, '--index-dir', dir);
    assert.equal(again.status, 0, again.stderr);
    assert.doesNotMatch(again.stdout, /rebuilt/);
    assert.match(again.stdout, /\(0 changed, 0 removed\) → 17 passages/);
    const lines = run('index', FIXTURE_WORKSPACE, '--index-dir', dir, '--chunking', 'lines');
    assert.match(lines.stdout, /rebuilt the index: the chunking settings/);
    const bad = run('index', FIXTURE_WORKSPACE, '--index-dir', dir, '--chunking', 'ast');
    assert.notEqual(bad.status, 0);
    assert.match(bad.stderr, /argument 'ast' is invalid\. Allowed choices are auto, lines, syntax/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
