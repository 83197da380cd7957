/**
 * Time to cut one long CSV cell into passages, at growing sizes: linear splitting keeps seconds per MB flat
 * (before it, 100 KB took 7 s, 400 KB 110 s and 1 MB over 5 min on the 2-core dev machine).
 *   npm run bench:long-line -- [SIZE_BYTES...]   (default 100000 400000 1000000 10000000)
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';
import { DEFAULT_CHUNKING, estimateTokens } from '../sidecar/corpus/chunk';
import { corpusPassages } from '../sidecar/corpus/corpus-file';

async function main(): Promise<void> {
  const sizes = process.argv.slice(2).map(Number);
  const dir = mkdtempSync(path.join(tmpdir(), 'replug-bench-line-'));
  try {
    for (const size of sizes.length ? sizes : [100_000, 400_000, 1_000_000, 10_000_000]) {
      const words: string[] = [];
      for (let i = 0, length = 0; length < size; i++) {
        words.push(`w${i.toString(36)}`);
        length += words[i].length + 1;
      }
      const file = path.join(dir, 'cell.csv');
      writeFileSync(file, `id,text\nbig,"${words.join(' ')}"\n`);
      const t = performance.now();
      let passages = 0;
      for await (const row of corpusPassages(file, estimateTokens, DEFAULT_CHUNKING)) passages += row.length;
      const seconds = (performance.now() - t) / 1000;
      console.log(`${(size / 1e6).toFixed(1)} MB cell: ${passages} passages in ${seconds.toFixed(2)} s (${(seconds / (size / 1e6)).toFixed(2)} s/MB)`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
