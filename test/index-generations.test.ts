import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, mkdirSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { commitGeneration, readCurrentGeneration } from '../sidecar/index/generations';
import { writeFileDurable } from '../sidecar/index/atomic-file';

function tempDir(): string {
  return mkdtempSync(path.join(tmpdir(), 'replug-gen-'));
}

test('a committed generation becomes current and replaces the previous one', async () => {
  const dir = tempDir();
  try {
    const first = await commitGeneration(dir, (d) => writeFileDurable(path.join(d, 'a.txt'), 'one'));
    const second = await commitGeneration(dir, (d) => writeFileDurable(path.join(d, 'a.txt'), 'two'));
    assert.equal(second.number, first.number + 1);
    const current = await readCurrentGeneration(dir);
    assert.equal(current?.dir, second.dir);
    assert.equal(readFileSync(path.join(current!.dir, 'a.txt'), 'utf8'), 'two');
    assert.deepEqual(readdirSync(dir).sort(), ['CURRENT', path.basename(second.dir)]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a failed write leaves the previous generation current and no temp folder behind', async () => {
  const dir = tempDir();
  try {
    const first = await commitGeneration(dir, (d) => writeFileDurable(path.join(d, 'a.txt'), 'one'));
    await assert.rejects(
      commitGeneration(dir, async (d) => {
        await writeFileDurable(path.join(d, 'a.txt'), 'half');
        throw new Error('disk full');
      }),
      /disk full/,
    );
    assert.equal((await readCurrentGeneration(dir))?.dir, first.dir);
    assert.deepEqual(readdirSync(dir).sort(), ['CURRENT', path.basename(first.dir)]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('leftovers of a crashed save (temp folder, generation CURRENT never named) are ignored, then cleaned', async () => {
  const dir = tempDir();
  try {
    const first = await commitGeneration(dir, (d) => writeFileDurable(path.join(d, 'a.txt'), 'one'));
    // What a SIGKILL between rename and the CURRENT swap, or during the temp write, leaves behind.
    mkdirSync(path.join(dir, 'gen-000002'));
    writeFileSync(path.join(dir, 'gen-000002', 'a.txt'), 'torn');
    mkdirSync(path.join(dir, '.tmp-gen-2-99999'));
    assert.equal((await readCurrentGeneration(dir))?.dir, first.dir);
    const next = await commitGeneration(dir, (d) => writeFileDurable(path.join(d, 'a.txt'), 'three'));
    assert.equal(readFileSync(path.join(next.dir, 'a.txt'), 'utf8'), 'three');
    assert.deepEqual(readdirSync(dir).sort(), ['CURRENT', path.basename(next.dir)]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('no CURRENT or a garbled CURRENT reads as no index', async () => {
  const dir = tempDir();
  try {
    assert.equal(await readCurrentGeneration(dir), undefined);
    writeFileSync(path.join(dir, 'CURRENT'), '../../etc\n');
    assert.equal(await readCurrentGeneration(dir), undefined);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
