import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, readdirSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import type { IndexDamagedError } from '../sidecar/index/index-files';
import { WorkspaceIndex } from '../sidecar/index/workspace-index';
import { HashingEncoder } from './helpers/hashing-encoder';
import { makeTree, writeFiles } from './helpers/temp-tree';

const CLI = [process.execPath, '--import', 'tsx', path.resolve(__dirname, '..', 'sidecar', 'cli', 'main.ts')];
const run = (...args: string[]) => spawnSync(CLI[0], [...CLI.slice(1), ...args], { encoding: 'utf8' });

const V1 = { 'src/retry.ts': 'export function retryWithBackoff(attempts: number) {\n  return attempts * 2;\n}\n' };
/** The second generation adds a file whose term only it holds: a hit for it tells which generation answered. */
const V2 = { 'src/parse.ts': 'export function parseCsvRow(line: string) {\n  return line.split(",");\n}\n' };

/** Seeded bytes, so a failure reproduces. */
function randomBytes(seed: number, n: number): Buffer {
  const out = Buffer.alloc(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

type Damage = (file: string, seed: number) => void;
const DAMAGES: Record<string, Damage> = {
  truncated: (file) => truncateSync(file, Math.floor(readFileSync(file).length / 2)),
  emptied: (file) => truncateSync(file, 0),
  'one byte flipped': (file) => {
    const bytes = readFileSync(file);
    bytes[bytes.length >> 1] ^= 0x20;
    writeFileSync(file, bytes);
  },
  '64 random bytes at a random offset': (file, seed) => {
    const bytes = readFileSync(file);
    const at = randomBytes(seed, 4).readUInt32LE(0) % Math.max(1, bytes.length - 64);
    randomBytes(seed + 1, 64).copy(bytes, at);
    writeFileSync(file, bytes);
  },
};
const PARTS = ['manifest.json', 'passages.json', 'lexical.bin', 'dense.hnsw'];

/** A dense + lexical index with two generations: gen-000001 (V1) and the live gen-000002 (V1 + V2). */
async function twoGenerations(): Promise<{ dir: string; cleanup: () => void }> {
  const tree = makeTree(V1);
  const dir = mkdtempSync(path.join(tmpdir(), 'replug-integrity-'));
  for (const step of [{}, V2]) {
    writeFiles(tree.root, step);
    const index = await WorkspaceIndex.open(dir, { encoder: new HashingEncoder(), encoderSpec: 'hashing' });
    await index.update([tree.root]);
    await index.close();
  }
  return {
    dir,
    cleanup: () => {
      tree.cleanup();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

test('a save keeps the generation it came from and removes older ones', async () => {
  const fixture = await twoGenerations();
  try {
    assert.deepEqual(readdirSync(fixture.dir).filter((e) => e.startsWith('gen-')).sort(), ['gen-000001', 'gen-000002']);
    const [root] = JSON.parse(readFileSync(path.join(fixture.dir, 'gen-000002', 'manifest.json'), 'utf8')).roots;
    writeFiles(root, { 'src/more.ts': 'export const more = 1;\n' });
    const index = await WorkspaceIndex.open(fixture.dir, { encoder: new HashingEncoder(), encoderSpec: 'hashing' });
    await index.update([root]);
    await index.close();
    assert.deepEqual(readdirSync(fixture.dir).filter((e) => e.startsWith('gen-')).sort(), ['gen-000002', 'gen-000003']);
  } finally {
    fixture.cleanup();
  }
});

test('every kind of damage to every file of the live generation falls back to the previous one, loudly', async () => {
  const fixture = await twoGenerations();
  try {
    let seed = 1;
    for (const part of PARTS) {
      for (const [kind, damage] of Object.entries(DAMAGES)) {
        const dir = mkdtempSync(path.join(tmpdir(), 'replug-damaged-'));
        try {
          cpSync(fixture.dir, dir, { recursive: true });
          damage(path.join(dir, 'gen-000002', part), seed++);
          const what = `${part} ${kind}`;
          const manifest = await WorkspaceIndex.readManifest(dir);
          assert.equal(manifest?.files, 1, `${what}: the manifest of the intact generation is read`);
          const index = await WorkspaceIndex.open(dir, { encoder: new HashingEncoder(), encoderSpec: 'hashing', readOnly: true });
          try {
            const damageNote = index.status().damage ?? '';
            assert.match(damageNote, /generation gen-000002 is damaged \(/, what);
            assert.match(damageNote, /using the previous generation gen-000001/, what);
            assert.match(damageNote, new RegExp(part === 'manifest.json' ? 'manifest\\.json' : part.replace('.', '\\.')), what);
            const hits = await index.search('retryWithBackoff', { mode: 'hybrid' });
            assert.match(hits[0]?.passage.text ?? '', /retryWithBackoff/, what);
            assert.equal((await index.search('parseCsvRow', { mode: 'lexical' })).length, 0, `${what}: gen-000001 answered`);
          } finally {
            await index.close();
          }

          // Without an intact older generation a reader refuses, and a writer rebuilds saying why.
          rmSync(path.join(dir, 'gen-000001'), { recursive: true });
          await assert.rejects(WorkspaceIndex.readManifest(dir), (err: IndexDamagedError) => {
            assert.match(err.message, /cannot be used: index generation gen-000002 is damaged.*Rebuild it: run `replug-code index/, what);
            // The encoder it was built with, for the rebuild, when the manifest itself is intact.
            assert.equal(err.model, part === 'manifest.json' ? undefined : 'hashing', what);
            return true;
          });
          await assert.rejects(WorkspaceIndex.open(dir, { readOnly: true }), /no intact earlier generation is left/, what);
          const writer = await WorkspaceIndex.open(dir, { encoder: new HashingEncoder(), encoderSpec: 'hashing' });
          const roots = JSON.parse(readFileSync(path.join(fixture.dir, 'gen-000002', 'manifest.json'), 'utf8')).roots;
          const report = await writer.update(roots);
          await writer.close();
          assert.match(report.rebuilt ?? '', /gen-000002 is damaged/, what);
          assert.equal(report.files, 2, what);
        } finally {
          rmSync(dir, { recursive: true, force: true });
        }
      }
    }
  } finally {
    fixture.cleanup();
  }
});

test('damage after this process verified a generation is still caught (a rewritten file is hashed again)', async () => {
  const fixture = await twoGenerations();
  try {
    assert.equal((await WorkspaceIndex.readManifest(fixture.dir))?.files, 2);
    DAMAGES['one byte flipped'](path.join(fixture.dir, 'gen-000002', 'lexical.bin'), 0);
    assert.equal((await WorkspaceIndex.readManifest(fixture.dir))?.files, 1, 'fell back to gen-000001');
    const index = await WorkspaceIndex.open(fixture.dir, { readOnly: true });
    assert.match(index.status().damage ?? '', /gen-000002 is damaged \(lexical\.bin does not match its sha256 checksum\)/);
    await index.close();
  } finally {
    fixture.cleanup();
  }
});

test('a garbled CURRENT falls back to the newest intact generation; an outdated format is rebuilt, never misread', async () => {
  const fixture = await twoGenerations();
  try {
    writeFileSync(path.join(fixture.dir, 'CURRENT'), '\x00\x13garbage');
    const index = await WorkspaceIndex.open(fixture.dir, { readOnly: true });
    assert.match(index.status().damage ?? '', /CURRENT is damaged.*using the previous generation gen-000002/);
    assert.equal(index.status().files, 2);
    await index.close();

    writeFileSync(path.join(fixture.dir, 'CURRENT'), 'gen-000002\n');
    const manifestFile = path.join(fixture.dir, 'gen-000002', 'manifest.json');
    const { sha256: _seal, parts: _parts, ...old } = JSON.parse(readFileSync(manifestFile, 'utf8'));
    writeFileSync(manifestFile, JSON.stringify({ ...old, formatVersion: 1 }));
    await assert.rejects(WorkspaceIndex.open(fixture.dir, { readOnly: true }), /index format 1 is outdated/);
    await assert.rejects(WorkspaceIndex.readManifest(fixture.dir), (err: IndexDamagedError) => err.model === 'hashing');
    const writer = await WorkspaceIndex.open(fixture.dir);
    const report = await writer.update(old.roots);
    await writer.close();
    assert.match(report.rebuilt ?? '', /index format 1 is outdated/);
    assert.equal(report.files, 2);
  } finally {
    fixture.cleanup();
  }
});

test('CLI: search, index, train and eval report a damaged index instead of "no results" or blaming the workspace', () => {
  const tree = makeTree({ ...V1, ...V2 });
  const dir = mkdtempSync(path.join(tmpdir(), 'replug-cli-damaged-'));
  try {
    assert.equal(run('index', tree.root, '--index-dir', dir).status, 0);
    writeFiles(tree.root, { 'src/more.ts': 'export const more = 1;\n' });
    assert.equal(run('index', tree.root, '--index-dir', dir).status, 0);
    truncateSync(path.join(dir, 'gen-000002', 'lexical.bin'), 100);

    const fallback = run('search', 'retryWithBackoff', '--index-dir', dir);
    assert.equal(fallback.status, 0, fallback.stderr);
    assert.match(fallback.stderr, /warning: index generation gen-000002 is damaged \(lexical\.bin has 100 bytes, the manifest says \d+\); using the previous generation gen-000001/);
    assert.match(fallback.stdout, /retry\.ts:1-3/);

    rmSync(path.join(dir, 'gen-000001'), { recursive: true });
    const search = run('search', 'retryWithBackoff', '--index-dir', dir);
    assert.equal(search.status, 1);
    assert.doesNotMatch(search.stdout, /no results/);
    assert.match(search.stderr, /cannot be used: index generation gen-000002 is damaged \(lexical\.bin.*run `replug-code index <folders> --index-dir/);
    for (const command of [
      ['train', '--output', path.join(dir, 'out'), '--lm-url', 'http://127.0.0.1:9/v1', '--lm-model', 'm'],
      ['eval', '--lm-url', 'http://127.0.0.1:9/v1', '--lm-model', 'm'],
    ]) {
      const result = run(...command, '--index-dir', dir);
      assert.equal(result.status, 1, command[0]);
      assert.match(result.stderr, /cannot be used: index generation gen-000002 is damaged/, command[0]);
    }

    const index = run('index', tree.root, '--index-dir', dir);
    assert.equal(index.status, 0, index.stderr);
    assert.match(index.stdout, /rebuilt the index: index generation gen-000002 is damaged \(lexical\.bin/);
    assert.match(run('search', 'retryWithBackoff', '--index-dir', dir).stdout, /retry\.ts:1-3/);
  } finally {
    tree.cleanup();
    rmSync(dir, { recursive: true, force: true });
  }
});
