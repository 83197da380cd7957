/**
 * Indexing and lexical-search benchmark on a real tree (default: this project's node_modules, > 5,000 files).
 * Prints files/s and passages/s for a cold build and a no-change rescan, and search latency p50/p95.
 *   npm run bench:index -- [ROOT] [--queries N]
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';
import { WorkspaceIndex } from '../sidecar/index/workspace-index';

const QUERIES = [
  'createHash', 'readFileSync', 'EventEmitter', 'parseArgs', 'Buffer.concat', 'JSON.parse', 'process.nextTick',
  'resolve a module path', 'parse command line arguments', 'retry a failed request with backoff',
  'convert a string to camel case', 'read a file line by line', 'compute a sha256 hash', 'escape html entities',
  'tokenize input text', 'walk a directory recursively', 'deep clone an object', 'format a date', 'throttle a function',
  'validate an email address',
];

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const root = path.resolve(args.find((a) => !a.startsWith('--')) ?? 'node_modules');
  const rounds = Number(args[args.indexOf('--queries') + 1]) || 200;
  const dir = mkdtempSync(path.join(tmpdir(), 'replug-bench-index-'));
  try {
    let index = await WorkspaceIndex.open(dir);
    let t = performance.now();
    const cold = await index.update([root]);
    const coldSeconds = (performance.now() - t) / 1000;
    await index.close();

    index = await WorkspaceIndex.open(dir);
    t = performance.now();
    const warm = await index.update([root]);
    const warmSeconds = (performance.now() - t) / 1000;
    await index.close();

    t = performance.now();
    const reader = await WorkspaceIndex.open(dir, { readOnly: true });
    const loadSeconds = (performance.now() - t) / 1000;
    const latencies: number[] = [];
    for (let i = 0; i < rounds; i++) {
      const q = QUERIES[i % QUERIES.length];
      const s = performance.now();
      await reader.search(q, { k: 10, mode: 'lexical' });
      latencies.push(performance.now() - s);
    }
    await reader.close();
    latencies.sort((a, b) => a - b);
    const pct = (p: number) => latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))];
    const skipped = Object.values(cold.skipped).reduce((a, b) => a + b, 0);
    console.log(`tree: ${root}`);
    console.log(`files indexed: ${cold.files} (skipped ${skipped}: ${JSON.stringify(cold.skipped)})`);
    console.log(`passages: ${cold.passages}`);
    console.log(`cold build: ${coldSeconds.toFixed(2)} s — ${(cold.files / coldSeconds).toFixed(0)} files/s, ${(cold.passages / coldSeconds).toFixed(0)} passages/s`);
    console.log(`no-change rescan: ${warmSeconds.toFixed(2)} s — ${(warm.files / warmSeconds).toFixed(0)} files/s (${warm.filesChanged} changed)`);
    console.log(`open index: ${loadSeconds.toFixed(2)} s`);
    console.log(`lexical search (k=10, ${rounds} queries): p50 ${pct(0.5).toFixed(2)} ms, p95 ${pct(0.95).toFixed(2)} ms`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
