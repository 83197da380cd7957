import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, mkdir, rm, writeFile, unlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  CancellationTokenSource,
  WorkDoneProgress,
  type WorkDoneProgressBegin,
  type WorkDoneProgressEnd,
  type WorkDoneProgressReport,
} from 'vscode-languageserver-protocol/node';
import {
  IndexRequest,
  IndexStatusRequest,
  RemoveFileRequest,
  SearchRequest,
  UpdateFileRequest,
} from '../sidecar/server/protocol';
import { makeTinyBert } from '../scripts/make-tiny-bert';
import { startSidecar, type Sidecar } from './helpers/sidecar-process';

async function writeTree(root: string, files: Record<string, string>): Promise<void> {
  for (const [rel, text] of Object.entries(files)) {
    await mkdir(join(root, rel, '..'), { recursive: true });
    await writeFile(join(root, rel), text);
  }
}

const HULL = `def cross(o, a, b):
    return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])


def convex_hull(points):
    """Monotone chain convex hull of 2-D points."""
    pts = sorted(set(points))
    lower = []
    for p in pts:
        while len(lower) >= 2 and cross(lower[-2], lower[-1], p) <= 0:
            lower.pop()
        lower.append(p)
    return lower
`;

const CACHE = `export class LruCache<K, V> {
  private readonly entries = new Map<K, V>();
  constructor(private readonly capacity: number) {}
  get(key: K): V | undefined {
    const value = this.entries.get(key);
    if (value === undefined) return undefined;
    this.entries.delete(key);
    this.entries.set(key, value);
    return value;
  }
}
`;

describe('sidecar server over JSON-RPC', () => {
  let dir: string;
  let root: string;
  let sidecar: Sidecar;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'replug-server-'));
    root = join(dir, 'ws');
    await writeTree(root, {
      'geometry/hull.py': HULL,
      'cache/lru.ts': CACHE,
      'retry.go': 'package retry\n\n// RetryWithBackoff doubles the delay after every failed attempt.\nfunc RetryWithBackoff() {}\n',
    });
    const started = await startSidecar({ indexDir: join(dir, 'index') });
    assert.equal(started.initError, undefined);
    sidecar = started;
  });

  after(async () => {
    await sidecar?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  test('initialize without an index directory fails with a message that says what to pass', async () => {
    const bad = await startSidecar({});
    try {
      assert.match(String(bad.initError?.message), /indexDir is required/);
    } finally {
      await bad.stop();
    }
  });

  test('indexes a root with work-done progress and reports the result in a status notification', async () => {
    const events: (WorkDoneProgressBegin | WorkDoneProgressReport | WorkDoneProgressEnd)[] = [];
    const token = 'test-progress';
    const listener = sidecar.connection.onProgress(WorkDoneProgress.type, token, (v) => events.push(v));
    const result = await sidecar.connection.sendRequest(IndexRequest.type, { roots: [root], workDoneToken: token });
    listener.dispose();
    assert.equal(result.cancelled, false);
    assert.ok(!result.cancelled);
    assert.equal(result.files, 3);
    assert.ok(result.passages >= 3, `expected a passage per file, got ${result.passages}`);
    assert.equal(events[0]?.kind, 'begin');
    assert.equal(events.at(-1)?.kind, 'end');
    const status = await sidecar.connection.sendRequest(IndexStatusRequest.type);
    assert.equal(status.files, 3);
    assert.equal(status.busy, false);
    const last = sidecar.statuses.at(-1);
    assert.equal(last?.health, 'ok');
    assert.equal(last?.busy, false);
    assert.equal(last?.passages, result.passages);
    assert.ok(sidecar.statuses.some((s) => s.busy), 'a busy status was sent while the job ran');
  });

  test('search ranks the matching file first and honours excludePath and excludeLines', async () => {
    const hits = await sidecar.connection.sendRequest(SearchRequest.type, { query: 'convex hull points', k: 3 });
    const hull = join(root, 'geometry/hull.py');
    assert.equal(hits[0]?.path, hull);
    assert.ok(hits[0]!.text.includes('def convex_hull'));
    assert.ok(hits[0]!.startLine >= 1 && hits[0]!.endLine >= hits[0]!.startLine);

    const withoutFile = await sidecar.connection.sendRequest(SearchRequest.type, {
      query: 'convex hull points',
      excludePath: hull,
    });
    assert.ok(withoutFile.every((h) => h.path !== hull));

    // A span that no hull passage overlaps excludes nothing.
    const farAway = await sidecar.connection.sendRequest(SearchRequest.type, {
      query: 'convex hull points',
      excludePath: hull,
      excludeLines: [1000, 1001],
    });
    assert.equal(farAway[0]?.path, hull);
    const sameSpan = await sidecar.connection.sendRequest(SearchRequest.type, {
      query: 'convex hull points',
      excludePath: hull,
      excludeLines: [hits[0]!.startLine, hits[0]!.endLine],
    });
    assert.ok(sameSpan.every((h) => h.path !== hull || h.endLine < hits[0]!.startLine || h.startLine > hits[0]!.endLine));

    assert.deepEqual(await sidecar.connection.sendRequest(SearchRequest.type, { query: '   ' }), []);
  });

  test('updateFile and removeFile keep the index in step with the disk', async () => {
    const file = join(root, 'cache/ttl.ts');
    await writeFile(file, 'export function expireStaleEntriesQuokka(now: number) {\n  return now;\n}\n');
    await sidecar.connection.sendRequest(UpdateFileRequest.type, { path: file });
    let hits = await sidecar.connection.sendRequest(SearchRequest.type, { query: 'expireStaleEntriesQuokka' });
    assert.equal(hits[0]?.path, file);

    await unlink(file);
    await sidecar.connection.sendRequest(RemoveFileRequest.type, { path: file });
    hits = await sidecar.connection.sendRequest(SearchRequest.type, { query: 'expireStaleEntriesQuokka' });
    assert.ok(hits.every((h) => h.path !== file));
  });

  test('an index request for a missing folder fails with the folder named, and the sidecar keeps serving', async () => {
    const missing = join(dir, 'no-such-folder');
    await assert.rejects(
      sidecar.connection.sendRequest(IndexRequest.type, { roots: [missing] }),
      // Only the reason: the editor says what failed, so no "Indexing failed: " prefix doubles its own.
      (err: Error) => err.message.includes(missing) && !/indexing failed/i.test(err.message),
    );
    const hits = await sidecar.connection.sendRequest(SearchRequest.type, { query: 'LruCache entries' });
    assert.equal(hits[0]?.path, join(root, 'cache/lru.ts'));
  });

  test('cancelling an index request stops the job and answers cancelled; searches are served meanwhile', async () => {
    const big = join(dir, 'big');
    const files: Record<string, string> = {};
    for (let i = 0; i < 600; i++) files[`m${i}/f${i}.ts`] = `export const value${i} = ${i};\n${CACHE}`;
    await writeTree(big, files);
    const cts = new CancellationTokenSource();
    const job = sidecar.connection.sendRequest(IndexRequest.type, { roots: [big] }, cts.token);
    const hits = await sidecar.connection.sendRequest(SearchRequest.type, { query: 'convex hull points', k: 1 });
    assert.equal(hits[0]?.path, join(root, 'geometry/hull.py'));
    cts.cancel();
    const result = await job;
    assert.equal(result.cancelled, true);
    assert.equal(sidecar.statuses.at(-1)?.busy, false);
  });
});

describe('sidecar server with an encoder setting', () => {
  test('loads the encoder in the sidecar (real ORT session) and serves hybrid search', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'replug-server-dense-'));
    const model = join(dir, 'model');
    await makeTinyBert(model, { vocab: 'small', layers: 1, hidden: 32, heads: 4, ffn: 64 });
    const root = join(dir, 'ws');
    await writeTree(root, { 'geometry/hull.py': HULL, 'cache/lru.ts': CACHE });
    const sidecar = await startSidecar({ indexDir: join(dir, 'index'), encoderModel: model, encoderDevice: 'cpu' });
    try {
      assert.equal(sidecar.initError, undefined);
      const result = await sidecar.connection.sendRequest(IndexRequest.type, { roots: [root] });
      assert.ok(!result.cancelled && result.passagesEmbedded === result.passages && result.passages > 0);
      const status = await sidecar.connection.sendRequest(IndexStatusRequest.type);
      assert.equal(status.dense, true);
      const hits = await sidecar.connection.sendRequest(SearchRequest.type, { query: 'convex hull', mode: 'hybrid', k: 2 });
      assert.equal(hits[0]?.path, join(root, 'geometry/hull.py'));
      assert.equal(typeof hits[0]?.denseScore, 'number');
    } finally {
      await sidecar.stop();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
