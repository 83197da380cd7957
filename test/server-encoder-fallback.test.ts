import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EvaluateRequest, IndexRequest, IndexStatusRequest, SearchRequest } from '../sidecar/server/protocol';
import { startSidecar } from './helpers/sidecar-process';

test('an encoder setting that cannot be loaded leaves indexing and search working lexically, and the status says why', { timeout: 60_000 }, async () => {
  const dir = await mkdtemp(join(tmpdir(), 'replug-broken-encoder-'));
  const model = join(dir, 'not-a-model'); // a folder without config.json, tokenizer or weights
  await mkdir(model);
  const root = join(dir, 'ws');
  await mkdir(join(root, 'geometry'), { recursive: true });
  await writeFile(join(root, 'geometry/hull.py'), 'def convex_hull(points):\n    """Monotone chain convex hull."""\n    return sorted(points)\n');
  const sidecar = await startSidecar({ indexDir: join(dir, 'index'), encoderModel: model, encoderDevice: 'cpu' });
  try {
    assert.equal(sidecar.initError, undefined);
    const result = await sidecar.connection.sendRequest(IndexRequest.type, { roots: [root] });
    assert.ok(!result.cancelled && result.files === 1 && result.passages > 0 && result.passagesEmbedded === 0, JSON.stringify(result));
    const hits = await sidecar.connection.sendRequest(SearchRequest.type, { query: 'convex hull', k: 1 });
    assert.equal(hits[0]?.path, join(root, 'geometry/hull.py'));
    assert.equal((await sidecar.connection.sendRequest(IndexStatusRequest.type)).dense, false);

    const last = sidecar.statuses.at(-1)!;
    assert.equal(last.health, 'warning');
    assert.equal(last.encoderFallback?.model, model);
    assert.match(last.encoderFallback!.reason, /tokenizer\.json|config\.json/);
    assert.match(last.message ?? '', /lexical search only/);

    // What needs the encoder says which one and what to do, once.
    await assert.rejects(
      sidecar.connection.sendRequest(EvaluateRequest.type, { lm: { baseUrl: 'http://127.0.0.1:9/v1', model: 'm' } }),
      (err: Error) => err.message.includes(model) && /fix replugCode\.encoder\.model/.test(err.message) && !/failed: .*failed:/i.test(err.message),
    );
  } finally {
    await sidecar.stop();
    await rm(dir, { recursive: true, force: true });
  }
});
