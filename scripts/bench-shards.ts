/**
 * Build time and peak memory of a CSV corpus indexed in one piece vs in N shards built one after the other
 * (`index --shard-id I --num-shards N`, then `merge-shards`), on a synthetic corpus made by make-synthetic-csv.ts.
 * Each build runs in a child process of its own, so its peak RSS is its own; a sequence of shards counts the sum
 * of their times and the largest of their peaks (what one machine running them in turn needs).
 *
 *   npm run bench:shards -- [--rows 1000000] [--shards 4] [--dense-rows 0] [--dir DIR]
 *
 * --rows: the lexical (BM25) corpus. --dense-rows N also builds an N-row corpus with a MiniLM-shape random encoder
 * (6 layers, 384 wide, real vocabulary) on the CPU, single vs shards, and extrapolates its passages/s to --rows.
 * --dir keeps the corpora and indexes there (they are large); by default a temporary folder, removed at the end.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { loadEncoder } from '../sidecar/encoder/ort-encoder';
import { loadGeneration } from '../sidecar/index/index-files';
import { mergeShards } from '../sidecar/index/shards';
import { WorkspaceIndex } from '../sidecar/index/workspace-index';
import { makeTinyBert, MINILM_SHAPE } from './make-tiny-bert';

interface Measured {
  seconds: number;
  peakMb: number;
  passages: number;
  /** Set when the build failed: what it threw (time and memory are those until then). */
  error?: string;
}

interface Agreement {
  passages: number;
  /** Vectors of the same passage that are equal bit for bit in both indexes. */
  sameVectors: number;
  maxDifference: number;
  queries: number;
  /** Queries whose top 10 (by passage) is the same list in both indexes. */
  sameTop10: number;
}

/**
 * How far the merged index's vectors and dense rankings are from the single build's. A real encoder pads each batch
 * to its longest member, so a passage's vector depends in its last bits on which passages share its batch, and the
 * batches of a shard are not those of a single build. Queries: every 7th passage's own vector.
 */
async function denseAgreement(singleDir: string, mergedDir: string): Promise<Agreement> {
  const [single, merged] = await Promise.all([loadGeneration(singleDir), loadGeneration(mergedDir)]);
  const pairs = [...single.table.byId.values()].map((p) => [p.label, merged.table.byId.get(p.id)!.label]);
  const singleLabel = new Map(pairs.map(([s, m]) => [m, s]));
  const agreement: Agreement = { passages: pairs.length, sameVectors: 0, maxDifference: 0, queries: 0, sameTop10: 0 };
  pairs.forEach(([s, m], i) => {
    const [a, b] = [single.dense!.vector(s), merged.dense!.vector(m)];
    const difference = Math.max(...a.map((x, j) => Math.abs(x - b[j])));
    if (difference === 0) agreement.sameVectors++;
    agreement.maxDifference = Math.max(agreement.maxDifference, difference);
    if (i % 7) return;
    const top = single.dense!.search(a, 10).map((h) => h.label);
    const mergedTop = merged.dense!.search(b, 10).map((h) => singleLabel.get(h.label));
    agreement.queries++;
    if (top.join() === mergedTop.join()) agreement.sameTop10++;
  });
  return agreement;
}

/** In a child: one build (or merge, or their dense agreement), reported as a JSON line on stdout, failed or not. */
async function child(args: string[]): Promise<void> {
  const [what, out, ...rest] = args;
  if (what === 'agree') {
    process.stdout.write(`${JSON.stringify(await denseAgreement(out, rest[0]))}\n`);
    return;
  }
  const started = performance.now();
  let passages = 0;
  let error: string | undefined;
  try {
    if (what === 'merge') {
      passages = (await mergeShards(out, rest)).passages;
    } else {
      const [csv, model, shardId, shardCount] = rest;
      const encoder = model ? await loadEncoder({ model, device: 'cpu' }) : undefined;
      const shard = shardCount ? { id: Number(shardId), count: Number(shardCount) } : undefined;
      const index = await WorkspaceIndex.open(out, { encoder, encoderSpec: model || undefined, shard });
      try {
        passages = (await index.update([], { csv: [csv] })).passages;
      } finally {
        await index.close().catch(() => undefined);
        await encoder?.dispose();
      }
    }
  } catch (err) {
    error = err instanceof Error ? `${err.name}: ${err.message}` : String(err);
    passages = (await WorkspaceIndex.readManifest(out).catch(() => undefined))?.passages ?? 0;
  }
  const measured: Measured = { seconds: (performance.now() - started) / 1000, peakMb: process.resourceUsage().maxRSS / 1024, passages, error };
  process.stdout.write(`${JSON.stringify(measured)}\n`);
}

function inChild<T = Measured>(...args: string[]): T {
  const result = spawnSync(process.execPath, ['--import', 'tsx', __filename, '--child', ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
  if (result.status !== 0) throw new Error(`${args[0]} ${args[1]} failed (exit ${result.status ?? result.signal})`);
  return JSON.parse(result.stdout.trim().split('\n').pop()!) as T;
}

/** The live generation of an index: the earlier one kept beside it for recovery is not counted. */
function liveGeneration(indexDir: string): string {
  return path.join(indexDir, readFileSync(path.join(indexDir, 'CURRENT'), 'utf8').trim());
}

function dirBytes(dir: string): number {
  if (!existsSync(dir)) return 0;
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .reduce((sum, e) => sum + statSync(path.join(e.parentPath, e.name)).size, 0);
}

/** The files of two live generations that are equal byte for byte (by the checksums their manifests record). */
function identicalParts(a: string, b: string): string[] {
  const parts = (dir: string) => (JSON.parse(readFileSync(path.join(liveGeneration(dir), 'manifest.json'), 'utf8')) as { parts: Record<string, { sha256: string }> }).parts;
  const [pa, pb] = [parts(a), parts(b)];
  return Object.keys(pa).filter((name) => pa[name].sha256 === pb[name]?.sha256);
}

/** Writes the corpus under a temporary name first, so a run stopped halfway never leaves a short corpus to reuse. */
function generate(file: string, rows: number): void {
  if (existsSync(file)) return;
  const made = spawnSync(process.execPath, ['--import', 'tsx', path.join(__dirname, 'make-synthetic-csv.ts'), `${file}.part`, '--rows', String(rows)], { stdio: 'inherit' });
  if (made.status !== 0) throw new Error('make-synthetic-csv failed');
  renameSync(`${file}.part`, file);
}

/** Single build, then the shards in turn and their merge; prints one line each and the ratios. */
function compare(label: string, csv: string, work: string, shards: number, model = ''): { single: Measured; sharded: Measured } {
  rmSync(work, { recursive: true, force: true });
  mkdirSync(work, { recursive: true });
  const single = inChild('build', path.join(work, 'single'), csv, model);
  const parts = Array.from({ length: shards }, (_, id) => inChild('build', path.join(work, `shard-${id}`), csv, model, String(id), String(shards)));
  const merge = inChild('merge', path.join(work, 'merged'), ...parts.map((_, id) => path.join(work, `shard-${id}`)));
  const sharded: Measured = {
    seconds: parts.reduce((s, p) => s + p.seconds, 0),
    peakMb: Math.max(...parts.map((p) => p.peakMb)),
    passages: parts.reduce((s, p) => s + p.passages, 0),
    error: parts.find((p) => p.error)?.error,
  };
  const line = (name: string, m: Measured) =>
    `  ${name.padEnd(26)} ${m.seconds.toFixed(1).padStart(8)} s ${(m.passages / m.seconds).toFixed(0).padStart(8)} passages/s  peak RSS ${m.peakMb.toFixed(0).padStart(6)} MB  ` +
    (m.error ? `FAILED: ${m.error} (${m.passages} passages saved before)` : `(${m.passages} passages)`);
  console.log(`${label}: ${csv} (${(statSync(csv).size / 2 ** 20).toFixed(0)} MB)`);
  console.log(line('single build', single));
  parts.forEach((p, id) => console.log(line(`shard ${id} of ${shards}`, p)));
  console.log(line(`${shards} shards, one after another`, sharded));
  console.log(line(`merge-shards`, merge));
  if (single.error || sharded.error) return { single, sharded };
  const [singleDir, mergedDir] = [path.join(work, 'single'), path.join(work, 'merged')];
  const size = (dir: string) => `${(dirBytes(liveGeneration(dir)) / 2 ** 20).toFixed(0)} MB`;
  console.log(`  index on disk (live generation): single ${size(singleDir)}, merged ${size(mergedDir)}`);
  console.log(`  merged vs single build, identical files: ${identicalParts(singleDir, mergedDir).join(', ') || 'none'}`);
  if (model) {
    const a = inChild<Agreement>('agree', singleDir, mergedDir);
    console.log(
      `  vectors: ${a.sameVectors} of ${a.passages} bit-identical, largest difference ${a.maxDifference.toExponential(1)}; ` +
        `dense top 10 the same list for ${a.sameTop10} of ${a.queries} queries`,
    );
  }
  console.log(
    `  ${shards} shards in turn / single: time ×${(sharded.seconds / single.seconds).toFixed(2)}, peak memory ×${(sharded.peakMb / single.peakMb).toFixed(2)}; ` +
      `merge adds ${merge.seconds.toFixed(1)} s at ${merge.peakMb.toFixed(0)} MB`,
  );
  return { single, sharded };
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      child: { type: 'boolean' },
      rows: { type: 'string', default: '1000000' },
      shards: { type: 'string', default: '4' },
      'dense-rows': { type: 'string', default: '0' },
      dir: { type: 'string' },
    },
    allowPositionals: true,
    strict: false,
  });
  if (values.child) return child(process.argv.slice(process.argv.indexOf('--child') + 1));
  const rows = Number(values.rows);
  const shards = Number(values.shards);
  const denseRows = Number(values['dense-rows']);
  const dir = typeof values.dir === 'string' ? path.resolve(values.dir) : mkdtempSync(path.join(tmpdir(), 'replug-bench-shards-'));
  mkdirSync(dir, { recursive: true });
  try {
    const csv = path.join(dir, `synthetic-${rows}.csv`);
    generate(csv, rows);
    compare(`lexical (BM25), ${rows} rows`, csv, path.join(dir, 'lexical'), shards);
    if (denseRows > 0) {
      const small = path.join(dir, `synthetic-${denseRows}.csv`);
      generate(small, denseRows);
      const model = path.join(dir, 'minilm-shape');
      if (!existsSync(model)) await makeTinyBert(model, { ...MINILM_SHAPE });
      const { single } = compare(`lexical + dense (MiniLM shape, CPU), ${denseRows} rows`, small, path.join(dir, 'dense'), shards, model);
      const rate = single.passages / single.seconds;
      const passages = (rows * single.passages) / denseRows;
      console.log(
        `  extrapolated to ${rows} rows (${(passages / 1e6).toFixed(2)}M passages at ${(single.passages / denseRows).toFixed(2)} a row, as here) ` +
          `at ${rate.toFixed(1)} passages/s: ${(passages / rate / 3600).toFixed(1)} h on this machine`,
      );
    }
  } finally {
    if (typeof values.dir !== 'string') rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
