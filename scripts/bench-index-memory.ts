/**
 * Peak memory of indexing one large file (as `--max-file-bytes` allows), each in a fresh process: generated code
 * with a distinct identifier on every line (the worst case for BM25's term table) and code that reuses a small
 * vocabulary. Prints peak RSS and its ratio to the input size.
 *   npm run bench:index-memory -- [MB ...]   (default 10 50)
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { WorkspaceIndex } from '../sidecar/index/workspace-index';

const NAMES = ['parse', 'row', 'value', 'cache', 'retry', 'index', 'token', 'shape', 'area', 'buffer', 'stream', 'chunk'];

function generate(bytes: number, distinct: boolean): string {
  const lines: string[] = [];
  let size = 0;
  for (let i = 0; size < bytes; i++) {
    const [a, b, c] = [NAMES[i % 12], NAMES[(i * 7) % 12], NAMES[(i * 5) % 12]];
    const id = distinct ? `${a}${i}` : `${a}${i % 50}`;
    const line = i % 10 === 0 ? `export function ${a}${b}${distinct ? i : i % 50}(input: number, ${c}: string): number {`
      : i % 10 === 9 ? '}'
      : `  const ${id} = ${b}Helper(${c}, input + ${distinct ? i : i % 97}); // ${a} ${b} ${c}`;
    lines.push(line);
    size += line.length + 1;
  }
  return `${lines.join('\n')}\n`;
}

async function child(root: string, indexDir: string): Promise<void> {
  const index = await WorkspaceIndex.open(indexDir, { maxFileBytes: Number.MAX_SAFE_INTEGER });
  const report = await index.update([root]);
  await index.close();
  process.stdout.write(JSON.stringify({ passages: report.passages, seconds: report.seconds, maxRssBytes: process.resourceUsage().maxRSS * 1024 }));
}

function main(): void {
  const sizes = process.argv.slice(2).map(Number);
  for (const mb of sizes.length ? sizes : [10, 50]) {
    for (const distinct of [true, false]) {
      const dir = mkdtempSync(path.join(tmpdir(), 'replug-bench-memory-'));
      try {
        const input = Buffer.from(generate(mb * 1024 * 1024, distinct));
        writeFileSync(path.join(dir, 'big.ts'), input);
        const run = spawnSync(process.execPath, ['--import', 'tsx', __filename, '--child', dir, path.join(dir, '.index')], { encoding: 'utf8' });
        if (run.status !== 0) throw new Error(run.stderr);
        const r = JSON.parse(run.stdout) as { passages: number; seconds: number; maxRssBytes: number };
        const kind = distinct ? 'a new identifier per line' : 'a 50-word vocabulary';
        console.log(
          `${mb} MB, ${kind}: ${r.passages} passages in ${r.seconds.toFixed(1)} s, peak RSS ${(r.maxRssBytes / 1e6).toFixed(0)} MB ` +
            `(${(r.maxRssBytes / input.length).toFixed(1)}× the input)`,
        );
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    }
  }
}

if (process.argv[2] === '--child') {
  child(process.argv[3], process.argv[4]).catch((err) => {
    console.error(err);
    process.exitCode = 1;
  });
} else {
  main();
}
