import * as assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { activateReplug } from './helpers';

suite('search while indexing', () => {
  test('a side-panel search is answered while another root is being indexed (time logged)', async () => {
    const api = await activateReplug();
    const other = await mkdtemp(join(tmpdir(), 'replug-other-root-'));
    try {
      for (let i = 0; i < 400; i++) {
        await mkdir(join(other, `pkg${i % 20}`), { recursive: true });
        await writeFile(
          join(other, `pkg${i % 20}`, `module${i}.ts`),
          `export function handler${i}(input: string): string {\n  return input.repeat(${i % 7}).trim();\n}\n`.repeat(10),
        );
      }
      const job = api.index([other]);
      const started = performance.now();
      const hits = await api.search({ query: 'convex hull monotone chain', k: 10 });
      const ms = performance.now() - started;
      const report = await job;
      console.log(`search during indexing of 400 files: ${ms.toFixed(1)} ms (index job: ${report.cancelled ? 'cancelled' : `${report.seconds.toFixed(1)} s`})`);
      assert.ok(hits.length > 0);
    } finally {
      await rm(other, { recursive: true, force: true });
    }
  });
});
