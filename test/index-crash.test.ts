import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { WorkspaceIndex } from '../sidecar/index/workspace-index';
import type { StoredState } from '../sidecar/index/index-state';
import { makeTree } from './helpers/temp-tree';

const REPO = path.resolve(__dirname, '..');
const CLI = [process.execPath, '--import', 'tsx', path.join(REPO, 'sidecar/cli/main.ts')];

/** Many small distinct source files, so a build takes a few seconds and checkpoints many times. */
function bigTree(files: number): Record<string, string> {
  const tree: Record<string, string> = {};
  for (let f = 0; f < files; f++) {
    const lines = [];
    for (let l = 0; l < 30; l++) lines.push(`export function handler${f}_${l}(input${l}: number) { return input${l} * ${f + l}; }`);
    tree[`pkg${f % 10}/module${f}.ts`] = lines.join('\n');
  }
  return tree;
}

/** Invariants of the live generation: every file's passages exist, every passage belongs to one file. */
function assertConsistent(dir: string): number {
  const current = readFileSync(path.join(dir, 'CURRENT'), 'utf8').trim();
  const state = JSON.parse(readFileSync(path.join(dir, current, 'passages.json'), 'utf8')) as StoredState;
  const ids = new Set(state.passages.map((p) => p.id));
  assert.equal(ids.size, state.passages.length, 'passage ids are unique');
  const owned = Object.values(state.files).flatMap((f) => f.passageIds);
  assert.equal(owned.length, ids.size, 'each passage belongs to exactly one file');
  for (const id of owned) assert.ok(ids.has(id), `file record names missing passage ${id}`);
  return ids.size;
}

async function passageIds(dir: string): Promise<string[]> {
  const index = await WorkspaceIndex.open(dir, { readOnly: true });
  try {
    return index.passages().map((p) => p.id).sort();
  } finally {
    await index.close();
  }
}

test('killing index with SIGKILL halfway leaves a consistent index that a rerun completes', { timeout: 180_000 }, async () => {
  const tree = makeTree(bigTree(1500));
  const crashed = mkdtempSync(path.join(tmpdir(), 'replug-crash-'));
  const clean = mkdtempSync(path.join(tmpdir(), 'replug-clean-'));
  try {
    const partials: number[] = [];
    for (const delayMs of [0, 150]) {
      const child = spawn(CLI[0], [...CLI.slice(1), 'index', tree.root, '--index-dir', crashed, '--checkpoint-seconds', '0'], {
        stdio: 'ignore',
      });
      const exited = new Promise((resolve) => child.once('exit', resolve));
      // Wait for the first checkpoint, then kill at some point of the following work (possibly inside a save).
      const deadline = Date.now() + 60_000;
      while (!existsSync(path.join(crashed, 'CURRENT')) && Date.now() < deadline) await sleep(20);
      await sleep(delayMs);
      child.kill('SIGKILL');
      await exited;
      const partial = assertConsistent(crashed);
      assert.ok(partial > 0, 'the checkpoint before the kill was kept');
      partials.push(partial);
    }

    const rerun = spawnSync(CLI[0], [...CLI.slice(1), 'index', tree.root, '--index-dir', crashed], { encoding: 'utf8' });
    assert.equal(rerun.status, 0, rerun.stderr);
    const full = spawnSync(CLI[0], [...CLI.slice(1), 'index', tree.root, '--index-dir', clean], { encoding: 'utf8' });
    assert.equal(full.status, 0, full.stderr);
    assertConsistent(crashed);
    const complete = await passageIds(clean);
    for (const partial of partials) assert.ok(partial < complete.length, 'the kill came before the build finished');
    assert.deepEqual(await passageIds(crashed), complete);
  } finally {
    tree.cleanup();
    rmSync(crashed, { recursive: true, force: true });
    rmSync(clean, { recursive: true, force: true });
  }
});
