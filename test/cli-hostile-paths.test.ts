import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { once } from 'node:events';
import { pathToFileURL } from 'node:url';
import { makeTinyBert } from '../scripts/make-tiny-bert';
import { WorkspaceIndex } from '../sidecar/index/workspace-index';

const REPO = path.resolve(__dirname, '..');
// tsx by location: the CLI also runs from folders outside the checkout.
const TSX = pathToFileURL(require.resolve('tsx')).href;
const CLI = [process.execPath, '--import', TSX, path.join(REPO, 'sidecar', 'cli', 'main.ts')];
const run = (args: string[], cwd = REPO) => spawnSync(CLI[0], [...CLI.slice(1), ...args], { encoding: 'utf8', cwd });

function tempDir(): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(path.join(tmpdir(), 'replug-hostile-'));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

describe('file names and paths a careless user or an attacker brings', () => {
  test('a relative --model is recorded absolute, so search works from any folder', async () => {
    const { dir, cleanup } = tempDir();
    try {
      await makeTinyBert(path.join(dir, 'work', 'models', 'bert'));
      writeFileSync(path.join(dir, 'work', 'retry.ts'), 'export function retryWithBackoff(attempts: number) {\n  return attempts * 2;\n}\n');
      const indexDir = path.join(dir, 'index');
      const index = run(['index', '.', '--index-dir', indexDir, '--model', 'models/bert', '--device', 'cpu'], path.join(dir, 'work'));
      assert.equal(index.status, 0, index.stderr);
      assert.equal((await WorkspaceIndex.readManifest(indexDir))?.encoder?.model, path.join(dir, 'work', 'models', 'bert'));
      mkdirSync(path.join(dir, 'elsewhere'));
      const search = run(['search', 'retry with backoff', '--index-dir', indexDir, '--device', 'cpu'], path.join(dir, 'elsewhere'));
      assert.equal(search.status, 0, search.stderr);
      assert.match(search.stdout, /retry\.ts:1-3 {2}score \S+ \(dense /);
    } finally {
      cleanup();
    }
  });

  test('names with a newline or an escape sequence stay on one escaped line in index -v and search output', () => {
    const { dir, cleanup } = tempDir();
    try {
      mkdirSync(path.join(dir, 'src'));
      writeFileSync(path.join(dir, 'src', 'two\nlines.ts'), 'export function newlineNamedHandler() {\n  return "\\u001b[31m";\n}\n');
      writeFileSync(path.join(dir, 'src', 'red\u001b[31m.bin'), Buffer.from([0, 1, 2, 3]));
      writeFileSync(path.join(dir, 'src', 'code.ts'), 'export const escapeInCode = "\u001b[2J\u202e";\n');
      const indexDir = path.join(dir, 'index');
      const index = run(['index', dir, '--index-dir', indexDir, '-v']);
      assert.equal(index.status, 0, index.stderr);
      assert.match(index.stdout, /^ {2}skipped ".*src\/red\\u001b\[31m\.bin": binary \(NUL byte at offset 0\)$/m);
      assert.doesNotMatch(index.stdout, /\u001b/);
      const search = run(['search', 'newlineNamedHandler', '--index-dir', indexDir]);
      assert.equal(search.status, 0, search.stderr);
      assert.match(search.stdout, /^1\. ".*src\/two\\nlines\.ts":1-3 {2}score /m);
      const code = run(['search', 'escapeInCode', '--index-dir', indexDir]);
      assert.match(code.stdout, /escapeInCode = "\\u001b\[2J\\u202e"/);
      assert.doesNotMatch(search.stdout + code.stdout, /[\u001b\u202e]/);
    } finally {
      cleanup();
    }
  });

  test('a file or folder whose name is not UTF-8 is skipped with that reason, not reported missing', () => {
    const { dir, cleanup } = tempDir();
    try {
      const root = Buffer.from(dir);
      const sep = Buffer.from('/');
      writeFileSync(path.join(dir, 'good.ts'), 'export const fine = 1;\n');
      writeFileSync(Buffer.concat([root, sep, Buffer.from('bad'), Buffer.from([0xff]), Buffer.from('.ts')]), 'export const lost = 1;\n');
      const folder = Buffer.concat([root, sep, Buffer.from([0xc3, 0x28]), Buffer.from('dir')]);
      mkdirSync(folder);
      writeFileSync(Buffer.concat([folder, sep, Buffer.from('inside.ts')]), 'export const alsoLost = 1;\n');
      const indexDir = path.join(dir, '.index');
      const index = run(['index', dir, '--index-dir', indexDir, '-v']);
      assert.equal(index.status, 0, index.stderr);
      assert.match(index.stdout, /indexed 1 file /);
      assert.match(index.stdout, /skipped .*bad\ufffd\.ts: name-not-utf8 \(the file name is not valid UTF-8; rename it to index it\)/);
      assert.match(index.stdout, /skipped .*\ufffd\(dir: name-not-utf8 \(the folder name is not valid UTF-8, so nothing in it is indexed; rename it to index it\)/);
      assert.doesNotMatch(index.stdout, /ENOENT/);
    } finally {
      cleanup();
    }
  });

  test('a LOCK naming a pid that now belongs to another process is stale; a live owner is named, with how to clear it', async () => {
    const { dir, cleanup } = tempDir();
    const lock = path.join(dir, 'LOCK');
    try {
      // The parent (the test runner) is alive, but did not start at tick 1: its pid was reused.
      writeFileSync(lock, `${process.ppid} 1\n`);
      await (await WorkspaceIndex.open(dir)).close();

      // A lock from a version that recorded no start time: the pid alone decides, and the error says what to do.
      writeFileSync(lock, `${process.ppid}\n`);
      await assert.rejects(WorkspaceIndex.open(dir), new RegExp(`in use by process ${process.ppid}\\..*delete ${lock.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`));
      rmSync(lock);

      // A real owner in another process keeps the index.
      const holder = spawn(process.execPath, ['--import', TSX, '-e', `
        const { WorkspaceIndex } = require(${JSON.stringify(path.join(REPO, 'sidecar/index/workspace-index.ts'))});
        WorkspaceIndex.open(${JSON.stringify(dir)}).then(() => { console.log('locked'); process.stdin.resume(); });
      `], { cwd: REPO, stdio: ['pipe', 'pipe', 'inherit'] });
      await once(holder.stdout!, 'data');
      assert.match(readFileSync(lock, 'utf8'), new RegExp(`^${holder.pid} \\d+\\n$`));
      await assert.rejects(WorkspaceIndex.open(dir), new RegExp(`in use by process ${holder.pid}\\. Wait for it to finish or stop it, then retry\\.$`));
      holder.kill('SIGKILL');
      await once(holder, 'exit');
      await (await WorkspaceIndex.open(dir)).close();
    } finally {
      cleanup();
    }
  });
});
