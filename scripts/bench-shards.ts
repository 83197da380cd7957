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
import { existsSync, mkdirSync, mkdtempSync, readdirSync, renameSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { loadEncoder } from '../sidecar/encoder/ort-encoder';
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

/** In a child: one build (or merge), reported as a JSON line on stdout, failed or not. */
async function child(args: string[]): Promise<void> {
  const [what, out, ...rest] = args;
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

function inChild(...args: string[]): Measured {
  const result = spawnSync(process.execPath, ['--import', 'tsx', __filename, '--child', ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
  if (result.status !== 0) throw new Error(`${args[0]} ${args[1]} failed (exit ${result.status ?? result.signal})`);
  return JSON.parse(result.stdout.trim().split('\n').pop()!) as Measured;
}

function dirBytes(dir: string): number {
  if (!existsSync(dir)) return 0;
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .reduce((sum, e) => sum + statSync(path.join(e.parentPath, e.name)).size, 0);
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
  console.log(`  index on disk: single ${(dirBytes(path.join(work, 'single')) / 2 ** 20).toFixed(0)} MB, merged ${(dirBytes(path.join(work, 'merged')) / 2 ** 20).toFixed(0)} MB`);
  if (single.error || sharded.error) return { single, sharded };
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
