import { after, before, beforeEach, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { makeTinyBert } from '../scripts/make-tiny-bert';
import { resolveModel, type DownloadProgress } from '../sidecar/encoder/model-source';
import { loadEncoder } from '../sidecar/encoder/ort-encoder';

/**
 * A stand-in for the hub on 127.0.0.1: `/<id>/resolve/main/<file>` redirects LFS files (model.safetensors) to
 * `/cdn/<file>` with x-linked-size / x-linked-etag on the redirect, like huggingface.co, and honours Range.
 */
interface Hub {
  url: string;
  log: string[];
  /** Cut the next full (non-Range) transfer of model.safetensors after this many bytes. */
  cutAfter?: number;
  /** Advertise this sha256 instead of the real one. */
  fakeSha?: string;
  missing: Set<string>;
  close(): Promise<void>;
}

async function startHub(source: string, id: string): Promise<Hub> {
  const hub = { log: [] as string[], missing: new Set<string>() } as unknown as Hub;
  const server = http.createServer(async (req, res) => {
    const range = req.headers.range;
    hub.log.push(`${req.method} ${req.url}${range ? ` ${range}` : ''}`);
    const url = decodeURIComponent(req.url ?? '');
    const prefix = `/${id}/resolve/main/`;
    const file = url.startsWith(prefix) ? url.slice(prefix.length) : url.startsWith('/cdn/') ? url.slice(5) : undefined;
    if (!file || hub.missing.has(file) || !existsSync(path.join(source, file))) {
      res.writeHead(404).end('Entry not found');
      return;
    }
    const body = await readFile(path.join(source, file));
    if (file === 'model.safetensors' && url.startsWith(prefix)) {
      const sha = hub.fakeSha ?? createHash('sha256').update(body).digest('hex');
      res.writeHead(302, { location: `/cdn/${file}`, 'x-linked-size': body.length, 'x-linked-etag': `"${sha}"` }).end();
      return;
    }
    const m = range ? /^bytes=(\d+)-$/.exec(range) : null;
    const start = m ? Number(m[1]) : 0;
    const headers: http.OutgoingHttpHeaders = { 'content-length': body.length - start, 'accept-ranges': 'bytes' };
    if (m) headers['content-range'] = `bytes ${start}-${body.length - 1}/${body.length}`;
    res.writeHead(m ? 206 : 200, headers);
    if (req.method === 'HEAD') {
      res.end();
      return;
    }
    if (!m && hub.cutAfter !== undefined && file === 'model.safetensors') {
      const cut = hub.cutAfter;
      hub.cutAfter = undefined;
      res.write(body.subarray(0, cut), () => setTimeout(() => res.destroy(), 20));
      return;
    }
    res.end(body.subarray(start));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  hub.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  hub.close = () => new Promise((resolve) => server.close(() => resolve()));
  return hub;
}

describe('model download from a hub endpoint', () => {
  const id = 'acme/tiny-bert';
  let dir: string;
  let source: string;
  let hub: Hub;
  let cacheDir: string;
  const savedEndpoint = process.env.HF_ENDPOINT;

  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'replug-dl-'));
    source = await makeTinyBert(path.join(dir, 'source'), { seed: 5 });
    hub = await startHub(source, id);
    process.env.HF_ENDPOINT = hub.url;
  });
  beforeEach(async () => {
    cacheDir = await mkdtemp(path.join(dir, 'cache-'));
    hub.log.length = 0;
    hub.missing.clear();
    hub.cutAfter = undefined;
    hub.fakeSha = undefined;
  });
  after(async () => {
    if (savedEndpoint === undefined) delete process.env.HF_ENDPOINT;
    else process.env.HF_ENDPOINT = savedEndpoint;
    await hub.close();
    await rm(dir, { recursive: true, force: true });
  });

  test('downloads a model, resuming an interrupted transfer with Range, and then uses the cache', async () => {
    hub.cutAfter = 40_000;
    const progress: DownloadProgress[] = [];
    const local = await resolveModel(id, { cacheDir, onProgress: (p) => progress.push(p) });
    assert.equal(local, path.join(cacheDir, 'acme', 'tiny-bert'));
    for (const f of ['config.json', 'model.safetensors', 'tokenizer.json', 'modules.json', '1_Pooling/config.json']) {
      assert.deepEqual(await readFile(path.join(local, f)), await readFile(path.join(source, f)), f);
    }
    assert.ok(hub.log.includes('GET /cdn/model.safetensors bytes=40000-'), hub.log.join('\n'));
    assert.ok(!(await readdir(local)).some((f) => f.endsWith('.part')));
    const last = progress.filter((p) => p.file === 'model.safetensors').at(-1)!;
    assert.equal(last.received, last.total);

    hub.log.length = 0;
    const encoder = await loadEncoder({ model: id, cacheDir, device: 'cpu' });
    await encoder.dispose();
    assert.deepEqual(hub.log, [], 'a complete cached model needs no requests');
  });

  test('a sha256 mismatch with x-linked-etag is refused and nothing is kept', async () => {
    hub.fakeSha = 'a'.repeat(64);
    await assert.rejects(resolveModel(id, { cacheDir }), /model\.safetensors: sha256 does not match the hub's/);
    assert.ok(!existsSync(path.join(cacheDir, 'acme', 'tiny-bert', 'model.safetensors')));
    assert.ok(!existsSync(path.join(cacheDir, 'acme', 'tiny-bert', 'model.safetensors.part')));
  });

  test('a model without safetensors weights is named as such', async () => {
    hub.missing.add('model.safetensors');
    await assert.rejects(resolveModel(id, { cacheDir }), /acme\/tiny-bert has no model\.safetensors/);
  });

  test('an unreachable endpoint gives the no-network advice', async () => {
    const closed = http.createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const port = (closed.address() as AddressInfo).port;
    await new Promise((resolve) => closed.close(resolve));
    process.env.HF_ENDPOINT = `http://127.0.0.1:${port}`;
    try {
      const expected = path.join(cacheDir, 'acme', 'tiny-bert').replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
      await assert.rejects(resolveModel(id, { cacheDir }), new RegExp(`^Error: no network \\(.*ECONNREFUSED\\): put the model folder at ${expected} or pass --model PATH$`));
    } finally {
      process.env.HF_ENDPOINT = hub.url;
    }
  });
});
