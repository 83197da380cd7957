import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { getEventListeners } from 'node:events';
import net from 'node:net';
import { LmClient } from '../sidecar/lm/lm-client';
import { TokenizerEndpoint } from '../sidecar/lm/tokenizer-endpoint';
import type { LmError } from '../sidecar/lm/lm-error';
import { LmScorer, type LmScorerOptions } from '../sidecar/lm/scorer';
import { LmServer } from '../sidecar/lm/serve';
import { CopyLm } from './fixtures/lm/copy-lm';
import { sendError, startInterposer, type InterceptedRequest, type Intercept } from './fixtures/lm/interposer';

const PAIR = { doc: 'function add(a, b) { return a + b; }', context: 'const total =', continuation: ' add(1, 2);' };

/** Scoring requests send a prompt list; the probe sends a single string, so faults can spare it. */
const isScoring = (req: InterceptedRequest) => req.path === '/v1/completions' && Array.isArray(req.body?.prompt) && Array.isArray(req.body.prompt[0]);

describe('LmScorer under faults', () => {
  const server = new LmServer(new CopyLm());
  let url: string;
  let expected: number;
  const proxies: { close: () => Promise<void> }[] = [];
  const faulty = async (intercept: Intercept) => {
    const proxy = await startInterposer(url, intercept);
    proxies.push(proxy);
    return proxy;
  };
  const scorer = (baseUrl: string, extra: Partial<LmScorerOptions> = {}) => new LmScorer({ baseUrl, model: 'copy-lm', retries: 2, retryBaseMs: 5, ...extra });
  /** Fails the first `times` scoring requests with `fail`, then lets them through. */
  const failFirst = (times: number, fail: (res: Parameters<Intercept>[1]) => void): Intercept => {
    let failed = 0;
    return (req, res) => {
      if (!isScoring(req) || failed >= times) return false;
      failed++;
      fail(res);
      return true;
    };
  };

  before(async () => {
    url = await server.listen(0);
    [{ logProb: expected }] = await scorer(url).score([PAIR]);
  });
  after(async () => {
    for (const proxy of proxies) await proxy.close();
    await server.close();
  });

  test('connection refused: bounded retries, then says the server is not reachable', async () => {
    const closed = net.createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const { port } = closed.address() as net.AddressInfo;
    await new Promise((resolve) => closed.close(resolve));
    await assert.rejects(scorer(`http://127.0.0.1:${port}/v1`).score([PAIR]), (err: LmError) =>
      err.kind === 'connection' && /cannot reach the LM server \(GET http:\/\/127\.0\.0\.1:\d+\/v1\/models: .*ECONNREFUSED.*is it running/.test(err.message) && /gave up after 3 attempts/.test(err.message));
  });

  test('dropped connections are retried and the score is unchanged', async () => {
    const proxy = await faulty(failFirst(2, (res) => res.socket?.destroy()));
    const s = scorer(proxy.url);
    const [score] = await s.score([PAIR]);
    assert.equal(score.logProb, expected);
    assert.equal(s.stats().retries, 2);
  });

  test('500 then OK is retried; a 429 burst is waited out; persistent 429 is an error', async () => {
    const flaky = await faulty(failFirst(1, (res) => sendError(res, 500, 'CUDA hiccup')));
    const s = scorer(flaky.url);
    assert.equal((await s.score([PAIR]))[0].logProb, expected);
    assert.equal(s.stats().retries, 1);
    const burst = await faulty(failFirst(2, (res) => sendError(res, 429, 'too many requests')));
    assert.equal((await scorer(burst.url).score([PAIR]))[0].logProb, expected);
    const busy = await faulty((req, res) => (isScoring(req) ? sendError(res, 429, 'too many requests') : false));
    await assert.rejects(scorer(busy.url).score([PAIR]), (err: LmError) => err.kind === 'rate-limit' && /429/.test(err.message));
  });

  test('a server slower than the timeout: retried once, then a timeout error that names the request and says what to change', async () => {
    const slow = await faulty(async (req, res) => {
      if (!isScoring(req)) return false;
      await new Promise((resolve) => setTimeout(resolve, 1500));
      return sendError(res, 500, 'too late');
    });
    const s = scorer(slow.url, { timeoutMs: 150, retries: 4 });
    await assert.rejects(s.score([PAIR]), (err: LmError) =>
      err.kind === 'timeout' && /did not answer POST http:\/\/127\.0\.0\.1:\d+\/v1\/completions within 150 ms; is it hung or overloaded\? Raise --timeout-ms/.test(err.message));
    assert.equal(slow.counts.get('/v1/completions'), 3, 'the probe, then two scoring attempts (a timeout is retried once, not 4 times)');
  });

  test('broken JSON or missing fields: a clear error at once, no retries, never a zero score', async () => {
    const broken = await faulty((req, res) => {
      if (!isScoring(req)) return false;
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{"choices": [');
      return true;
    });
    const s = scorer(broken.url);
    await assert.rejects(s.score([PAIR]), (err: LmError) => err.kind === 'malformed' && /not valid JSON/.test(err.message));
    assert.equal(broken.counts.get('/v1/completions'), 2); // the probe, then one scoring attempt
    const hollow = await faulty((req, res) => {
      if (!isScoring(req)) return false;
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ choices: [{ index: 0, text: '' }] }));
      return true;
    });
    await assert.rejects(scorer(hollow.url).score([PAIR]), (err: LmError) => err.kind === 'malformed' && /token_logprobs missing/.test(err.message));
    const text = await faulty((req, res) => {
      if (!isScoring(req)) return false;
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end('upstream proxy says hello');
      return true;
    });
    await assert.rejects(scorer(text.url).score([PAIR]), (err: LmError) => err.kind === 'malformed');
  });

  test('a wrong model name lists the served models', async () => {
    await assert.rejects(new LmScorer({ baseUrl: url, model: 'gpt-4o' }).score([PAIR]), (err: LmError) =>
      err.kind === 'model-not-found' && err.message.includes('model "gpt-4o" not served') && err.message.includes('served models: "copy-lm"') && err.message.includes('--lm-model'));
  });

  test('budgets that cannot fit the served context are refused up front; a context-length 400 (nested or old flat vLLM shape) says which budget to lower', async () => {
    const long = { doc: ' w'.repeat(9000), context: 'x', continuation: ' y' };
    await assert.rejects(scorer(url, { docTokens: 10_000 }).score([long]), (err: LmError) =>
      err.kind === 'context-length' && /context is 8192 tokens, too short for doc 10000/.test(err.message) && /lower --doc-tokens 10000/.test(err.message));
    const flat = await faulty((req, res) => (isScoring(req) ? sendError(res, 400, "This model's maximum context length is 64 tokens.", true) : false));
    await assert.rejects(scorer(flat.url).score([PAIR]), (err: LmError) => err.kind === 'context-length' && /64 tokens/.test(err.message));
  });
});

describe('LmClient and the caller\'s AbortSignal', () => {
  const server = new LmServer(new CopyLm());
  let url: string;
  const client = (baseUrl = url) => new LmClient({ baseUrl, concurrency: 4, timeoutMs: 10_000, retries: 0, retryBaseMs: 5 });
  before(async () => {
    url = await server.listen(0);
  });
  after(() => server.close());

  test('requests leave no listener on the caller\'s signal (a generation sends hundreds on one)', async () => {
    const signal = new AbortController().signal;
    const lm = client();
    for (let i = 0; i < 30; i++) await lm.get('/models', { signal });
    assert.equal(getEventListeners(signal, 'abort').length, 0);
  });

  test('a cut decoded once is not asked for again (every completion cuts its passages the same way)', async () => {
    const tokens = new TokenizerEndpoint(client(), 'copy-lm');
    const ids = await tokens.tokenize('function add(a, b) { return a + b; }', false);
    let requests = 0;
    const count = () => requests++;
    const first = await tokens.detokenize(ids.slice(0, 5), count);
    assert.equal(await tokens.detokenize(ids.slice(0, 5), count), first);
    assert.equal(requests, 1);
    await tokens.detokenize(ids.slice(0, 6), count);
    assert.equal(requests, 2, 'another cut is another request');
  });

  test('aborting the caller\'s signal still cancels a request in flight, with the caller\'s reason', async () => {
    const hung = await startInterposer(url, () => true); // takes every request and never answers
    try {
      const controller = new AbortController();
      const request = client(hung.url).get('/models', { signal: controller.signal });
      setTimeout(() => controller.abort(new Error('typed over')), 50);
      await assert.rejects(request, /typed over/);
    } finally {
      await hung.close();
    }
  });
});
