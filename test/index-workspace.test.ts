import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, unlinkSync, writeFileSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { openManifest, sealManifest } from '../sidecar/index/generation-integrity';
import { WorkspaceIndex } from '../sidecar/index/workspace-index';
import { HashingEncoder } from './helpers/hashing-encoder';
import { makeTree, writeFiles } from './helpers/temp-tree';

const SOURCES: Record<string, string> = {
  'src/csv.ts': [
    'import { parse } from "csv-parse";',
    '',
    '/** Reads a CSV corpus and returns one passage per row. */',
    'export function parseCsvPassages(text: string): string[] {',
    '  const rows = parse(text, { columns: true });',
    '  return rows.map((row: { text: string }) => row.text);',
    '}',
  ].join('\n'),
  'src/http.ts': [
    'export class HttpRetryPolicy {',
    '  constructor(private readonly attempts: number) {}',
    '  /** Exponential backoff with jitter between retries of a failed request. */',
    '  delayFor(attempt: number): number {',
    '    return Math.min(30_000, 2 ** attempt * 100) * (0.5 + Math.random() / 2);',
    '  }',
    '}',
  ].join('\n'),
  'lib/matrix.py': [
    'def matmul(a, b):',
    '    """Multiply two matrices given as lists of rows."""',
    '    return [[sum(x * y for x, y in zip(row, col)) for col in zip(*b)] for row in a]',
  ].join('\n'),
};

function tempIndexDir(): string {
  return mkdtempSync(path.join(tmpdir(), 'replug-index-'));
}

describe('lexical index of a folder', () => {
  test('finds an identifier and a natural-language query, and reports what it indexed', async () => {
    const tree = makeTree(SOURCES);
    const dir = tempIndexDir();
    try {
      const index = await WorkspaceIndex.open(dir);
      const report = await index.update([tree.root]);
      assert.equal(report.files, 3);
      assert.equal(report.filesChanged, 3);
      assert.ok(report.passages >= 3);
      assert.equal(report.passagesEmbedded, 0);
      const byIdent = await index.search('HttpRetryPolicy', { k: 3 });
      assert.equal(byIdent[0].passage.path, path.join(tree.root, 'src/http.ts'));
      const byWords = await index.search('multiply matrices', { k: 3 });
      assert.equal(byWords[0].passage.path, path.join(tree.root, 'lib/matrix.py'));
      assert.equal(byWords[0].passage.startLine, 1);
      await assert.rejects(index.search('x', { mode: 'dense' }), /needs an encoder/);
      await index.close();

      const reopened = await WorkspaceIndex.open(dir, { readOnly: true });
      assert.equal(reopened.status().passages, report.passages);
      assert.equal((await reopened.search('parseCsvPassages'))[0].passage.path, path.join(tree.root, 'src/csv.ts'));
      await reopened.close();
    } finally {
      tree.cleanup();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('saving a file re-chunks it; deleting a file or a whole folder drops its passages', async () => {
    const tree = makeTree(SOURCES);
    const dir = tempIndexDir();
    try {
      const index = await WorkspaceIndex.open(dir);
      await index.update([tree.root]);
      writeFiles(tree.root, { 'src/http.ts': 'export const brandNewIdentifier = 1;\n' });
      await index.updateFile(path.join(tree.root, 'src/http.ts'));
      assert.equal((await index.search('brandNewIdentifier'))[0].passage.path, path.join(tree.root, 'src/http.ts'));
      assert.ok((await index.search('HttpRetryPolicy')).every((h) => !h.passage.text.includes('HttpRetryPolicy')), 'the old text is gone');
      await index.removeFile(path.join(tree.root, 'src'));
      assert.deepEqual(await index.search('brandNewIdentifier parseCsvPassages'), []);
      assert.equal(index.status().files, 1);
      await index.removeFile(path.join(tree.root, 'lib', 'matrix.py'));
      assert.equal(index.status().passages, 0);
      await index.close();
    } finally {
      tree.cleanup();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('a second writer is refused with a clear message while a reader may open', async () => {
    const dir = tempIndexDir();
    try {
      const writer = await WorkspaceIndex.open(dir);
      await assert.rejects(WorkspaceIndex.open(dir), /in use by process/);
      const reader = await WorkspaceIndex.open(dir, { readOnly: true });
      await assert.rejects(reader.update([dir]), /read-only/);
      await reader.close();
      await writer.close();
      // The lock is gone once the writer closed.
      await (await WorkspaceIndex.open(dir)).close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('dense + lexical index', () => {
  test('re-embeds only changed passages, drops removed files, and keeps vectors in step with passages', async () => {
    const tree = makeTree(SOURCES);
    const dir = tempIndexDir();
    const encoder = new HashingEncoder();
    try {
      let index = await WorkspaceIndex.open(dir, { encoder, encoderSpec: 'hashing' });
      const first = await index.update([tree.root]);
      assert.equal(first.passagesEmbedded, first.passages);
      const hybrid = await index.search('HttpRetryPolicy backoff', { k: 2 });
      assert.equal(hybrid[0].passage.path, path.join(tree.root, 'src/http.ts'));
      assert.ok(hybrid[0].denseScore !== undefined && hybrid[0].lexicalScore !== undefined);
      const dense = await index.search('matmul zip rows', { k: 1, mode: 'dense' });
      assert.equal(dense[0].passage.path, path.join(tree.root, 'lib/matrix.py'));
      await index.close();

      // Unchanged tree: nothing re-embedded.
      index = await WorkspaceIndex.open(dir, { encoder, encoderSpec: 'hashing' });
      const again = await index.update([tree.root]);
      assert.equal(again.filesChanged, 0);
      assert.equal(again.passagesEmbedded, 0);

      // One file edited, one removed, one added.
      writeFiles(tree.root, { 'src/http.ts': SOURCES['src/http.ts'] + '\nexport const DEFAULT_ATTEMPTS = 5;\n', 'src/new.ts': 'export const answer = 42;\n' });
      unlinkSync(path.join(tree.root, 'lib/matrix.py'));
      const before = encoder.embedded;
      const third = await index.update([tree.root]);
      assert.equal(third.filesChanged, 2);
      assert.equal(third.filesRemoved, 1);
      assert.equal(encoder.embedded - before, third.passagesEmbedded);
      assert.ok(third.passagesEmbedded <= 2, `only the edited and the new passage are embedded, got ${third.passagesEmbedded}`);
      assert.deepEqual(await index.search('matmul', { mode: 'lexical' }), []);
      const all = await index.search('answer DEFAULT_ATTEMPTS HttpRetryPolicy parseCsvPassages', { k: 50, mode: 'dense' });
      assert.equal(all.length, index.status().passages, 'every passage has exactly one vector');
      await index.close();
    } finally {
      tree.cleanup();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('an index built with another encoder or dimension is rebuilt, never mixed', async () => {
    const tree = makeTree(SOURCES);
    const dir = tempIndexDir();
    try {
      let index = await WorkspaceIndex.open(dir, { encoder: new HashingEncoder(64), encoderSpec: 'a' });
      await index.update([tree.root]);
      await index.close();
      const other = new HashingEncoder(32);
      index = await WorkspaceIndex.open(dir, { encoder: other, encoderSpec: 'b' });
      await assert.rejects(index.search('matmul', { mode: 'dense' }), /no vectors for this encoder yet \(the encoder changed\)/);
      const report = await index.update([tree.root]);
      assert.equal(report.rebuilt, 'the encoder changed');
      assert.equal(report.passagesEmbedded, report.passages);
      assert.equal((await index.search('matmul zip rows', { k: 1, mode: 'dense' }))[0].passage.path, path.join(tree.root, 'lib/matrix.py'));
      await index.close();
      const manifest = await WorkspaceIndex.readManifest(dir);
      assert.deepEqual(manifest?.encoder, { fingerprint: other.fingerprint, dim: 32, model: 'b', precision: 'fp32' });
    } finally {
      tree.cleanup();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('the same encoder at another precision re-embeds everything; an old manifest without a precision counts as fp32', async () => {
    const tree = makeTree(SOURCES);
    const dir = tempIndexDir();
    try {
      let index = await WorkspaceIndex.open(dir, { encoder: new HashingEncoder(64, 'same', 'fp32'), encoderSpec: 'm' });
      await index.update([tree.root]);
      await index.close();
      // Indexes written before precisions existed have no field: strip it (resealing the manifest) and expect the
      // fp32 vectors to be kept.
      const gen = readdirSync(dir).find((e) => e.startsWith('gen-'))!;
      const manifestFile = path.join(dir, gen, 'manifest.json');
      const { manifest, parts } = openManifest(readFileSync(manifestFile, 'utf8'));
      delete manifest.encoder!.precision;
      writeFileSync(manifestFile, sealManifest(manifest, parts));
      index = await WorkspaceIndex.open(dir, { encoder: new HashingEncoder(64, 'same', 'fp32'), encoderSpec: 'm' });
      assert.equal((await index.update([tree.root])).passagesEmbedded, 0);
      await index.close();

      const int8 = new HashingEncoder(64, 'same', 'int8');
      index = await WorkspaceIndex.open(dir, { encoder: int8, encoderSpec: 'm' });
      await assert.rejects(index.search('matmul', { mode: 'dense' }), /no vectors for this encoder yet \(the encoder precision changed \(fp32 → int8\)\): run index with the same --model and --precision first/);
      const report = await index.update([tree.root]);
      assert.equal(report.rebuilt, 'the encoder precision changed (fp32 → int8)');
      assert.equal(report.passagesEmbedded, report.passages);
      assert.equal(int8.embedded, report.passages);
      await index.close();
      assert.equal((await WorkspaceIndex.readManifest(dir))?.encoder?.precision, 'int8');
    } finally {
      tree.cleanup();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('a damaged generation is rebuilt instead of crashing', async () => {
    const tree = makeTree(SOURCES);
    const dir = tempIndexDir();
    try {
      let index = await WorkspaceIndex.open(dir);
      await index.update([tree.root]);
      await index.close();
      const gen = readdirSync(dir).find((e) => e.startsWith('gen-'))!;
      writeFileSync(path.join(dir, gen, 'passages.json'), '{"truncat');
      index = await WorkspaceIndex.open(dir);
      assert.equal(index.status().passages, 0);
      const report = await index.update([tree.root]);
      assert.match(report.rebuilt ?? '', /gen-000001 is damaged \(passages\.json has 9 bytes/);
      assert.equal(report.files, 3);
      await index.close();
    } finally {
      tree.cleanup();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
