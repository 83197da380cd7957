import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { makeTinyBert } from '../scripts/make-tiny-bert';
import { WorkspaceIndex } from '../sidecar/index/workspace-index';
import { makeTree } from './helpers/temp-tree';

const CLI = [process.execPath, '--import', 'tsx', path.resolve(__dirname, '..', 'sidecar', 'cli', 'main.ts')];
const run = (...args: string[]) => spawnSync(CLI[0], [...CLI.slice(1), ...args], { encoding: 'utf8' });

test('index prints counts and skip reasons; search prints ranked passages and JSON', () => {
  const tree = makeTree({
    'src/retry.ts': 'export function retryWithBackoff(attempts: number) {\n  return attempts * 2;\n}\n',
    'src/image.png': Buffer.from([0x89, 0x50, 0x4e, 0x47, 0, 0, 0, 0, 1, 2, 3]),
    'package-lock.json': '{}\n',
  });
  const dir = mkdtempSync(path.join(tmpdir(), 'replug-cli-'));
  try {
    const index = run('index', tree.root, '--index-dir', dir, '-v');
    assert.equal(index.status, 0, index.stderr);
    assert.match(index.stdout, /indexed 1 file \(1 changed, 0 removed\) → 1 passage, 0 embedded/);
    assert.match(index.stdout, /skipped 2 files: (1 binary, 1 lock-file|1 lock-file, 1 binary)/);
    assert.match(index.stdout, /skipped .*image\.png: binary/);
    assert.match(index.stdout, /lexical only/);
    assert.match(index.stderr, /^save: 1 file$/m, 'progress lines (not a terminal) count in the right number');

    const text = run('search', 'retry with backoff', '--index-dir', dir, '-k', '3');
    assert.equal(text.status, 0, text.stderr);
    assert.match(text.stdout, /^1\. .*retry\.ts:1-3 {2}score \d/m);
    assert.match(text.stdout, /export function retryWithBackoff/);

    const json = run('search', 'retryWithBackoff', '--index-dir', dir, '--json');
    const hits = JSON.parse(json.stdout);
    assert.equal(hits[0].path, path.join(tree.root, 'src', 'retry.ts'));
    assert.deepEqual([hits[0].rank, hits[0].startLine, hits[0].endLine], [1, 1, 3]);
    assert.ok(hits[0].lexicalScore > 0 && hits[0].denseScore === undefined);
  } finally {
    tree.cleanup();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('bad input is a clear error with a non-zero exit code', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'replug-cli-'));
  try {
    const unknown = run('index', dir, '--index-dir', dir, '--no-such-flag');
    assert.notEqual(unknown.status, 0);
    assert.match(unknown.stderr, /unknown option '--no-such-flag'/);
    const missing = run('index', path.join(dir, 'nope'), '--index-dir', dir);
    assert.equal(missing.status, 1);
    assert.match(missing.stderr, /nope does not exist/);
    const nothing = run('search', 'x', '--index-dir', path.join(dir, 'empty'));
    assert.equal(nothing.status, 1);
    assert.match(nothing.stderr, /no index at .*run `replug-code index/);
    const self = run('index', dir, '--index-dir', path.join(dir, 'ix'));
    assert.equal(self.status, 0, self.stderr);
    // The index directory lies inside the indexed folder and is not indexed itself.
    assert.match(run('index', dir, '--index-dir', path.join(dir, 'ix')).stdout, /indexed 0 files/);
    const noModel = run('search', 'x', '--index-dir', path.join(dir, 'ix'), '--mode', 'dense');
    assert.equal(noModel.status, 1);
    assert.match(noModel.stderr, /dense search needs an encoder: pass --model/);
    const badK = run('search', 'x', '--index-dir', path.join(dir, 'ix'), '-k', 'zero');
    assert.notEqual(badK.status, 0);
    assert.match(badK.stderr, /expected a positive whole number/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('Ctrl-C during index saves what was done and exits with status 130', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'replug-cli-'));
  try {
    // A big real tree (this checkout's dependencies), so the run is still scanning when the signal arrives.
    const child = spawn(CLI[0], [...CLI.slice(1), 'index', path.resolve(__dirname, '..', 'node_modules'), '--index-dir', dir, '--checkpoint-seconds', '0'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    let sent = false;
    child.stderr.on('data', (d) => {
      stderr += d;
      if (!sent && /scan: /.test(stderr)) sent = child.kill('SIGINT');
    });
    const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
    assert.equal(code, 130, stderr);
    assert.match(stderr, /interrupted: progress so far was saved; run index again to finish/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('index --help shows the default of every tuning option', () => {
  const help = run('index', '--help');
  assert.equal(help.status, 0, help.stderr);
  const text = help.stdout.replace(/\s+/g, ' ');
  for (const [option, value] of [['--max-file-bytes', 1000000], ['--window-lines', 20], ['--stride-lines', 10], ['--max-tokens', 128], ['--checkpoint-seconds', 30], ['--batch-size', 16]]) {
    assert.match(text, new RegExp(`${option} <\\w+> [^-]*default: ${value}\\)`), `${option} shows no default`);
  }
});

test('index --precision is recorded and kept; search embeds queries at it; another precision re-embeds, saying why', async () => {
  const tree = makeTree({
    'src/retry.ts': 'export function retryWithBackoff(attempts: number) {\n  return attempts * 2;\n}\n',
    'src/csv.ts': 'export function parseCsvRow(line: string) {\n  return line.split(",");\n}\n',
  });
  const dir = mkdtempSync(path.join(tmpdir(), 'replug-cli-precision-'));
  try {
    const model = await makeTinyBert(path.join(dir, 'bert'), { maxPos: 128 });
    const indexDir = path.join(dir, 'index');
    const int8 = run('index', tree.root, '--index-dir', indexDir, '--model', model, '--precision', 'int8', '--device', 'cpu');
    assert.equal(int8.status, 0, int8.stderr);
    assert.equal((await WorkspaceIndex.readManifest(indexDir))?.encoder?.precision, 'int8');
    // Neither --model nor --precision repeated: the index stays as it is.
    const again = run('index', tree.root, '--index-dir', indexDir, '--device', 'cpu');
    assert.equal(again.status, 0, again.stderr);
    assert.match(again.stdout, /0 embedded/);
    assert.doesNotMatch(again.stdout, /rebuilt/);
    const dense = run('search', 'parse a csv row', '--index-dir', indexDir, '--mode', 'dense', '--device', 'cpu', '--json');
    assert.equal(dense.status, 0, dense.stderr);
    assert.equal(JSON.parse(dense.stdout).length, 2);
    const fp32 = run('index', tree.root, '--index-dir', indexDir, '--precision', 'fp32', '--device', 'cpu');
    assert.equal(fp32.status, 0, fp32.stderr);
    assert.match(fp32.stdout, /rebuilt the index: the encoder precision changed \(int8 → fp32\)/);
    assert.equal((await WorkspaceIndex.readManifest(indexDir))?.encoder?.precision, 'fp32');
  } finally {
    tree.cleanup();
    rmSync(dir, { recursive: true, force: true });
  }
});
