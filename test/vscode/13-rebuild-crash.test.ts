import * as assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { activateReplug, eventually, sidecarPid, workspaceRoot } from './helpers';
import { clearNotifications, ui } from './ui';

/** Enough files that a rebuild runs for seconds: the kill lands in the middle of it. */
async function bigRoot(): Promise<string> {
  const root = await mkdtemp(join(tmpdir(), 'replug-rebuild-root-'));
  for (let i = 0; i < 3000; i++) {
    await mkdir(join(root, `pkg${i % 30}`), { recursive: true });
    const lines = Array.from({ length: 20 }, (_, l) => `export function quokka${i}_${l}(v: number) { return v * ${i + l}; }`);
    await writeFile(join(root, `pkg${i % 30}`, `module${i}.ts`), lines.join('\n'));
  }
  return root;
}

suite('Rebuild Index and a crashed sidecar', () => {
  test('SIGKILL of the sidecar during a rebuild: the old index survives and still answers searches', async () => {
    const api = await activateReplug();
    const hull = join(workspaceRoot(), 'src/geometry/convex_hull.py');
    // The previous suite's settings changes restart the sidecar: wait until it answers.
    await eventually(() => Promise.resolve().then(() => api.index([workspaceRoot()])).catch(() => undefined), 'the sidecar to index', 60_000);
    const { dir } = await api.indexStatus();
    const oldGeneration = readFileSync(join(dir, 'CURRENT'), 'utf8').trim();
    const other = await bigRoot();
    try {
      const job = api.index([other], true);
      await eventually(async () => existsSync(join(`${dir}.rebuild`, 'LOCK')) || undefined, 'the rebuild to start', 60_000);
      await clearNotifications();
      process.kill(sidecarPid(), 'SIGKILL');
      assert.equal(readFileSync(join(dir, 'CURRENT'), 'utf8').trim(), oldGeneration, 'the live generation is still CURRENT');
      assert.ok(existsSync(join(dir, oldGeneration, 'passages.json')));

      // The client restarts the sidecar by itself; the old index answers as soon as it runs, while the rebuild
      // resumes from its checkpoint.
      const hits = await eventually(
        () => Promise.resolve().then(() => api.search({ query: 'convex hull monotone chain', k: 3 })).catch(() => undefined),
        'a search answered by the restarted sidecar',
        60_000,
      );
      assert.equal(hits[0]?.path, hull);

      const result = await job;
      assert.ok(!result.cancelled && result.files === 3000, JSON.stringify(result));
      assert.equal(result.resumedAfterRestarts, 1);
      assert.equal((await api.search({ query: 'quokka1234_5', k: 1 }))[0]?.path, join(other, 'pkg4', 'module1234.ts'));
      assert.ok((await api.search({ query: 'convex hull monotone chain', k: 3 })).every((h) => h.path !== hull), 'the rebuild replaced the old index');

      // What the user read: the crash and the resumption in plain words, no JSON-RPC error.
      const toasts = (await ui.notifications()).map((n) => n.text).join('\n');
      await ui.screenshot('rebuild-resumed-after-crash');
      assert.match(toasts, /stopped unexpectedly while indexing/);
      assert.match(toasts, /indexing resumes from the last checkpoint/);
      assert.doesNotMatch(toasts, /Pending response|connection got disposed/);
    } finally {
      await rm(other, { recursive: true, force: true });
      // Leave the fixture workspace indexed for the suites that follow.
      await api.index([workspaceRoot()], true);
    }
  });
});
