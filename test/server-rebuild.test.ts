import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, unlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { IndexService } from '../sidecar/server/index-service';
import { IndexRequest, IndexStatusRequest, SearchRequest } from '../sidecar/server/protocol';
import { startSidecar } from './helpers/sidecar-process';
import { makeTree, writeFiles } from './helpers/temp-tree';

const OLD_FILE = 'legacy/old.ts';
const OLD_TEXT = 'export function wombatLegacyMarker(x: number) {\n  return x + 1;\n}\n';

/** Many distinct files, so a rebuild scans for long enough to be interrupted and checkpoints often. */
function manyFiles(count: number): Record<string, string> {
  const files: Record<string, string> = {};
  for (let f = 0; f < count; f++) {
    const lines = Array.from({ length: 25 }, (_, l) => `export function quokka${f}_${l}(v${l}: number) { return v${l} * ${f + l}; }`);
    files[`pkg${f % 10}/module${f}.ts`] = lines.join('\n');
  }
  return files;
}

function service(indexDir: string): IndexService {
  // Checkpoint after every batch, so an interrupted rebuild always has saved work to resume.
  return new IndexService({ indexDir, indexOptions: { checkpointSeconds: 0 }, onStatus: () => undefined });
}

const currentGeneration = (indexDir: string) => readFileSync(path.join(indexDir, 'CURRENT'), 'utf8').trim();

/** A workspace indexed once with the old file, which is then replaced on disk by `count` new files. */
async function indexedThenChanged(count: number) {
  const tree = makeTree({ [OLD_FILE]: OLD_TEXT });
  const indexDir = path.join(mkdtempSync(path.join(tmpdir(), 'replug-rebuild-')), 'index');
  const first = service(indexDir);
  await first.index([tree.root]);
  await first.close();
  unlinkSync(path.join(tree.root, OLD_FILE));
  writeFiles(tree.root, manyFiles(count));
  return {
    root: tree.root,
    indexDir,
    oldGeneration: currentGeneration(indexDir),
    cleanup: () => {
      tree.cleanup();
      rmSync(path.dirname(indexDir), { recursive: true, force: true });
    },
  };
}

describe('Rebuild Index builds beside the live index', () => {
  test('the live index answers searches and stays CURRENT until the rebuild is complete', async () => {
    const ws = await indexedThenChanged(300);
    const index = service(ws.indexDir);
    try {
      const during: Promise<string[]>[] = [];
      const currents = new Set<string>();
      const result = await index.index([ws.root], {
        rebuild: true,
        onProgress: () => {
          currents.add(currentGeneration(ws.indexDir));
          if (during.length < 3) during.push(index.search({ query: 'wombatLegacyMarker', k: 1 }).then((hits) => hits.map((h) => h.path)));
        },
      });
      assert.ok(!result.cancelled && result.files === 300 && result.rebuilt, JSON.stringify(result));
      assert.ok(during.length > 0);
      for (const paths of await Promise.all(during)) assert.deepEqual(paths, [path.join(ws.root, OLD_FILE)], 'searched the old index');
      assert.deepEqual([...currents], [ws.oldGeneration], 'no checkpoint of the rebuild became CURRENT');
      assert.notEqual(currentGeneration(ws.indexDir), ws.oldGeneration);
      assert.deepEqual(await index.search({ query: 'wombatLegacyMarker', k: 1 }), []);
      assert.equal((await index.search({ query: 'quokka17_3', k: 1 }))[0]?.path, path.join(ws.root, 'pkg7/module17.ts'));
      assert.equal(existsSync(`${ws.indexDir}.rebuild`), false, 'the rebuild folder is removed once swapped in');
    } finally {
      await index.close();
      ws.cleanup();
    }
  });

  test('a rebuild interrupted by a shutdown resumes from its checkpoint at the next index job', async () => {
    const ws = await indexedThenChanged(600);
    try {
      const first = service(ws.indexDir);
      let closing: Promise<void> | undefined;
      const interrupted = await first.index([ws.root], {
        rebuild: true,
        onProgress: (p) => {
          if (p.files >= 300) closing ??= first.close();
        },
      });
      await closing;
      assert.equal(interrupted.cancelled, true);
      assert.equal(currentGeneration(ws.indexDir), ws.oldGeneration, 'the live index is untouched');

      const second = service(ws.indexDir);
      try {
        assert.deepEqual((await second.search({ query: 'wombatLegacyMarker', k: 1 }))[0]?.path, path.join(ws.root, OLD_FILE));
        const checkpoint = (await second.status()).rebuildCheckpoint;
        assert.ok(checkpoint && checkpoint.files > 0 && checkpoint.files < 600, JSON.stringify(checkpoint));
        // A plain index job (the editor's catch-up after a restart) continues the rebuild.
        const resumed = await second.index([ws.root]);
        assert.ok(!resumed.cancelled);
        assert.deepEqual(resumed.resumedRebuild, checkpoint);
        assert.equal(resumed.files, 600);
        assert.ok(resumed.filesChanged < 600, `only the files after the checkpoint were indexed (${resumed.filesChanged})`);
        assert.equal((await second.status()).rebuildCheckpoint, undefined);
        assert.deepEqual(await second.search({ query: 'wombatLegacyMarker', k: 1 }), []);
      } finally {
        await second.close();
      }

      const clean = service(path.join(path.dirname(ws.indexDir), 'clean'));
      const reference = await clean.index([ws.root]);
      await clean.close();
      assert.ok(!reference.cancelled && reference.passages === (await passagesOf(ws.indexDir)));
    } finally {
      ws.cleanup();
    }
  });

  test('an interrupted rebuild of other roots is started afresh, not continued', async () => {
    const ws = await indexedThenChanged(400);
    const other = makeTree(manyFiles(400), 'replug-other-');
    try {
      const first = service(ws.indexDir);
      let closing: Promise<void> | undefined;
      await first.index([ws.root, other.root], { rebuild: true, onProgress: (p) => p.files >= 500 && (closing ??= first.close()) });
      await closing;
      const second = service(ws.indexDir);
      try {
        const result = await second.index([ws.root], { rebuild: true });
        assert.ok(!result.cancelled && result.files === 400 && result.resumedRebuild === undefined, JSON.stringify(result));
        assert.ok((await second.search({ query: 'quokka17_3', k: 20 })).every((h) => !h.path.startsWith(other.root)));
      } finally {
        await second.close();
      }
    } finally {
      other.cleanup();
      ws.cleanup();
    }
  });

  test('a rebuild the user cancels is discarded and the live index kept', async () => {
    const ws = await indexedThenChanged(300);
    const index = service(ws.indexDir);
    try {
      const abort = new AbortController();
      const result = await index.index([ws.root], { rebuild: true, signal: abort.signal, onProgress: (p) => p.files >= 100 && abort.abort() });
      assert.equal(result.cancelled, true);
      assert.equal(currentGeneration(ws.indexDir), ws.oldGeneration);
      assert.equal(existsSync(`${ws.indexDir}.rebuild`), false);
      assert.equal((await index.status()).rebuildCheckpoint, undefined);
      assert.equal((await index.search({ query: 'wombatLegacyMarker', k: 1 }))[0]?.path, path.join(ws.root, OLD_FILE));
    } finally {
      await index.close();
      ws.cleanup();
    }
  });

  test('SIGKILL of the sidecar during a rebuild leaves the old index, which the restarted sidecar searches and then rebuilds', { timeout: 120_000 }, async () => {
    const ws = await indexedThenChanged(1500);
    try {
      const first = await startSidecar({ indexDir: ws.indexDir });
      const job = first.connection.sendRequest(IndexRequest.type, { roots: [ws.root], rebuild: true }).catch((err: Error) => err);
      const deadline = Date.now() + 60_000;
      while (!existsSync(path.join(`${ws.indexDir}.rebuild`, 'LOCK')) && Date.now() < deadline) await sleep(10);
      await sleep(100);
      first.process.kill('SIGKILL');
      await first.stop();
      assert.ok((await job) instanceof Error, 'the rebuild did not finish before the kill');
      assert.equal(currentGeneration(ws.indexDir), ws.oldGeneration);

      const second = await startSidecar({ indexDir: ws.indexDir });
      try {
        const hits = await second.connection.sendRequest(SearchRequest.type, { query: 'wombatLegacyMarker', k: 1 });
        assert.equal(hits[0]?.path, path.join(ws.root, OLD_FILE));
        assert.ok((await second.connection.sendRequest(IndexStatusRequest.type)).rebuildCheckpoint, 'the interrupted rebuild is waiting');
        const result = await second.connection.sendRequest(IndexRequest.type, { roots: [ws.root] });
        assert.ok(!result.cancelled && result.files === 1500 && result.rebuilt);
        assert.deepEqual(await second.connection.sendRequest(SearchRequest.type, { query: 'wombatLegacyMarker', k: 1 }), []);
      } finally {
        await second.stop();
      }
    } finally {
      ws.cleanup();
    }
  });
});

async function passagesOf(indexDir: string): Promise<number> {
  const index = service(indexDir);
  try {
    return (await index.status()).passages;
  } finally {
    await index.close();
  }
}
