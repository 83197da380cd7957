import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { ShardSpec } from '../sidecar/corpus/shard';
import type { IndexManifest } from '../sidecar/index/manifest';
import { mergeShards } from '../sidecar/index/shards';
import { WorkspaceIndex } from '../sidecar/index/workspace-index';
import { makeTinyBert } from '../scripts/make-tiny-bert';
import { HashingEncoder } from './helpers/hashing-encoder';

const CLI = [process.execPath, '--import', 'tsx', path.resolve(__dirname, '..', 'sidecar', 'cli', 'main.ts')];
const run = (...args: string[]) => spawnSync(CLI[0], [...CLI.slice(1), ...args], { encoding: 'utf8' });
const QUERIES = ['parse rows', 'retryWithBackoff', 'render template 17', 'widget', 'cache eviction policy', 'row 123', 'zebra'];

/** Rows of code-like text; some repeat another row's text (vectors reused) and some exceed the passage budget. */
function corpusCsv(rows: number, seed = 0): string {
  const topics = ['parse rows', 'retryWithBackoff(attempts)', 'render template', 'cache eviction policy', 'widget factory'];
  const lines = ['id,title,text'];
  for (let i = 0; i < rows; i++) {
    const topic = topics[(i * 7 + seed) % topics.length];
    const body = i % 50 === 3 ? 'a row repeated verbatim' : `${topic} ${i}: function step${i}(x) { return x + ${i}; }`;
    const long = i % 40 === 0 ? ` ${Array.from({ length: 30 }, (_, j) => `word${j}`).join(' ')}` : '';
    lines.push(`row${i},"Topic ${i % 9}","${body}${long}"`);
  }
  return `${lines.join('\n')}\n`;
}

async function build(dir: string, csv: string, encoder: HashingEncoder | undefined, shard?: ShardSpec): Promise<void> {
  const index = await WorkspaceIndex.open(dir, { encoder, encoderSpec: encoder ? 'hashing' : undefined, shard, chunking: { maxTokens: 24 } });
  try {
    await index.update([], { csv: [csv] });
  } finally {
    await index.close();
  }
}

/** Everything a user sees of an index: its passages in order and the results of searches in every mode. */
async function observable(dir: string, encoder: HashingEncoder | undefined): Promise<unknown> {
  const index = await WorkspaceIndex.open(dir, { encoder, encoderSpec: encoder ? 'hashing' : undefined, readOnly: true });
  try {
    const modes = encoder ? (['lexical', 'dense', 'hybrid'] as const) : (['lexical'] as const);
    const results = [];
    for (const query of QUERIES) for (const mode of modes) results.push(await index.search(query, { k: 15, mode }));
    return { passages: index.passages(), results };
  } finally {
    await index.close();
  }
}

let dir: string;
before(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'replug-shards-'));
});
after(() => rmSync(dir, { recursive: true, force: true }));

describe('sharded corpus builds', () => {
  test('merged shards give the passages and search results of a single build, dense and lexical', async () => {
    const csv = path.join(dir, 'corpus.csv');
    writeFileSync(csv, corpusCsv(800));
    for (const dense of [true, false]) {
      const encoder = dense ? new HashingEncoder(32) : undefined;
      const single = path.join(dir, `single-${dense}`);
      await build(single, csv, encoder);
      const shardDirs = [0, 1, 2].map((id) => path.join(dir, `shard-${dense}-${id}`));
      for (const [id, shardDir] of shardDirs.entries()) await build(shardDir, csv, encoder, { id, count: 3 });

      const sizes = await Promise.all(shardDirs.map(async (d) => (await WorkspaceIndex.readManifest(d))!.passages));
      const total = (await WorkspaceIndex.readManifest(single))!.passages;
      assert.equal(sizes.reduce((a, b) => a + b), total, 'the shards partition the passages');
      for (const size of sizes) assert.ok(size > total / 5, `every shard has a share: ${sizes}`);

      const merged = path.join(dir, `merged-${dense}`);
      // Any order of the shard directories.
      const report = await mergeShards(merged, [shardDirs[2], shardDirs[0], shardDirs[1]]);
      assert.deepEqual(report, { shards: 3, files: 1, passages: total, dense });
      assert.deepEqual(await observable(merged, encoder), await observable(single, encoder));
      const manifest = (await WorkspaceIndex.readManifest(merged))!;
      assert.equal(manifest.shard, undefined);
      assert.equal(manifest.partial, undefined);
    }
  });

  test('a changed corpus file is re-read: removed rows leave, changed rows alone are embedded again', async () => {
    const csv = path.join(dir, 'changing.csv');
    writeFileSync(csv, corpusCsv(300));
    const encoder = new HashingEncoder(32);
    const indexDir = path.join(dir, 'changing');
    await build(indexDir, csv, encoder);
    const embeddedFirst = encoder.embedded;
    // Drop row 5, change row 7's text.
    writeFileSync(csv, corpusCsv(300).replace(/^row5,.*\n/m, '').replace('function step7(x)', 'function seven(x)'));
    await build(indexDir, csv, encoder);
    assert.ok(encoder.embedded - embeddedFirst <= 2, `only the changed row is embedded, got ${encoder.embedded - embeddedFirst}`);
    const fresh = path.join(dir, 'changed-fresh');
    await build(fresh, csv, new HashingEncoder(32));
    const ids = async (d: string) => (await observable(d, undefined) as { passages: { id: string }[] }).passages.map((p) => p.id).sort();
    assert.deepEqual(await ids(indexDir), await ids(fresh));
  });

  test('incomplete, mixed or clashing shards are refused with what to do', async () => {
    const csv = path.join(dir, 'small.csv');
    writeFileSync(csv, corpusCsv(60));
    const shard = (id: number, count = 2, encoder?: HashingEncoder) => {
      const d = path.join(dir, `s-${id}-${count}-${encoder?.dim ?? 0}`);
      return build(d, csv, encoder, { id, count }).then(() => d);
    };
    const hashing = new HashingEncoder(32);
    const [a, b] = [await shard(0, 2, hashing), await shard(1, 2, hashing)];
    await assert.rejects(mergeShards(path.join(dir, 'm1'), [a]), /shard 1 of 2 missing: give all 2 shard directories/);
    await assert.rejects(mergeShards(path.join(dir, 'm2'), [a, a]), /both hold shard 0 of 2/);
    await assert.rejects(mergeShards(path.join(dir, 'm3'), [a, await shard(1, 3, hashing)]), /shard of 3, .* of 2: they come from different splits/);
    await assert.rejects(mergeShards(path.join(dir, 'm4'), [a, await shard(1, 2, new HashingEncoder(16))]), /different encoders/);
    // The same encoder at another precision (a shard embedded on a GPU at fp16): vectors of one index are of one kind.
    const fp16 = path.join(dir, 's-1-2-fp16');
    await build(fp16, csv, new HashingEncoder(32, 'hashing-32', 'fp16'), { id: 1, count: 2 });
    await assert.rejects(mergeShards(path.join(dir, 'm4b'), [a, fp16]), /different encoders \(the encoder precision changed \(fp32 → fp16\)\)/);
    const single = path.join(dir, 'not-a-shard');
    await build(single, csv, hashing);
    await assert.rejects(mergeShards(path.join(dir, 'm5'), [a, single]), /is not a shard/);
    await mergeShards(path.join(dir, 'm6'), [a, b]);
    await assert.rejects(mergeShards(path.join(dir, 'm6'), [a, b]), /already holds an index: merge into a new directory/);
    // One directory per shard, and folders are not sharded.
    await assert.rejects(build(a, csv, hashing, { id: 1, count: 2 }), /holds shard 0 of 2, not shard 1 of 2: give each shard its own --index-dir/);
    await assert.rejects(build(a, csv, hashing), /holds shard 0 of 2, not all rows/);
    const index = await WorkspaceIndex.open(path.join(dir, 'folders'), { shard: { id: 0, count: 2 } });
    await assert.rejects(index.update([dir]), /folders cannot be sharded/);
    await index.close();
  });

  test('SIGKILL during a shard build: the rerun embeds only what is missing, and merge-shards refuses the shard until then', { timeout: 300_000 }, async () => {
    const csv = path.join(dir, 'kill.csv');
    writeFileSync(csv, corpusCsv(6000));
    const model = await makeTinyBert(path.join(dir, 'model'), { vocab: 'real', maxPos: 64 });
    const shardArgs = (id: number, out: string) => ['index', '--passages', csv, '--index-dir', out, '--model', model, '--device', 'cpu', '--shard-id', String(id), '--num-shards', '2'];
    const killed = path.join(dir, 'killed');
    const child = spawn(CLI[0], [...CLI.slice(1), ...shardArgs(1, killed), '--checkpoint-seconds', '0'], { stdio: 'ignore' });
    const exited = new Promise((resolve) => child.once('exit', resolve));
    const deadline = Date.now() + 120_000;
    while (!existsSync(path.join(killed, 'CURRENT')) && Date.now() < deadline) await sleep(20);
    await sleep(300);
    child.kill('SIGKILL');
    await exited;
    const partial = (await WorkspaceIndex.readManifest(killed))!;
    assert.equal(partial.partial, true, 'a checkpoint of an unfinished build says so');

    const clean = path.join(dir, 'clean-1');
    const full = run(...shardArgs(1, clean));
    assert.equal(full.status, 0, full.stderr);
    const total = Number(/→ (\d+) passages, (\d+) embedded/.exec(full.stdout)![1]);
    assert.ok(partial.passages > 0 && partial.passages < total, `killed after ${partial.passages} of ${total} passages`);

    const shard0 = path.join(dir, 'clean-0');
    assert.equal(run(...shardArgs(0, shard0)).status, 0);
    const refused = run('merge-shards', path.join(dir, 'merged-early'), shard0, killed);
    assert.equal(refused.status, 1);
    assert.match(refused.stderr, /shard 1 of 2\) is unfinished: run its index command again/);

    const rerun = run(...shardArgs(1, killed));
    assert.equal(rerun.status, 0, rerun.stderr);
    const embedded = Number(/→ \d+ passages, (\d+) embedded/.exec(rerun.stdout)![1]);
    assert.ok(embedded <= total - partial.passages, `the rerun embedded ${embedded}; ${partial.passages} of ${total} were saved before the kill`);
    const passages = (d: string) => JSON.parse(readFileSync(path.join(d, readFileSync(path.join(d, 'CURRENT'), 'utf8').trim(), 'passages.json'), 'utf8')).passages.map((p: { id: string }) => p.id).sort();
    assert.deepEqual(passages(killed), passages(clean));
    assert.equal(((await WorkspaceIndex.readManifest(killed)) as IndexManifest).partial, undefined);

    const merged = run('merge-shards', path.join(dir, 'merged'), shard0, killed);
    assert.equal(merged.status, 0, merged.stderr);
    assert.match(merged.stdout, /merged 2 shards → \d+ passages of 1 corpus file \(lexical \+ dense\)/);
  });
});

test('a long row whose pieces repeat is indexed once per distinct piece, and dense search still answers after a reopen', async () => {
  const csv = path.join(dir, 'repeats.csv');
  writeFileSync(csv, `id,text\nr1,"${'abcd '.repeat(2000)}"\nr2,"a short row about parsing"\n`);
  const out = path.join(dir, 'repeats-index');
  const encoder = new HashingEncoder();
  await build(out, csv, encoder);
  const index = await WorkspaceIndex.open(out, { encoder, encoderSpec: 'hashing', readOnly: true });
  try {
    const ids = index.passages().map((p) => p.id);
    assert.equal(new Set(ids).size, ids.length, 'a passage id appears once');
    const hits = await index.search('abcd abcd', { k: 5, mode: 'dense' });
    assert.ok(hits.length > 0, 'dense search answers');
    assert.equal(new Set(hits.map((h) => h.passage.id)).size, hits.length, 'no passage is returned twice');
  } finally {
    await index.close();
  }
});

test('a corpus file unchanged since the last complete update (same size and mtime) is not read again', async () => {
  const csv = path.join(dir, 'unchanged.csv');
  writeFileSync(csv, corpusCsv(30));
  const when = Math.floor(Date.now() / 1000) - 60; // whole seconds: set back exactly below
  utimesSync(csv, when, when);
  const out = path.join(dir, 'unchanged-index');
  await build(out, csv, undefined);
  // Same size and mtime, unreadable as CSV: a rerun that read it would fail validation.
  writeFileSync(csv, '"'.repeat(statSync(csv).size));
  utimesSync(csv, when, when);
  await build(out, csv, undefined);
  const index = await WorkspaceIndex.open(out, { readOnly: true });
  try {
    assert.ok((await index.search('parse rows', { k: 3 })).length > 0, 'the indexed rows are still there');
  } finally {
    await index.close();
  }
  // A new mtime: read, validated, and refused.
  utimesSync(csv, when, when + 5);
  await assert.rejects(build(out, csv, undefined), /header lacks column\(s\) id, text/);
});
