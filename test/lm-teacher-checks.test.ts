import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { resolveBudgets } from '../sidecar/lm/budgets';
import type { LmError } from '../sidecar/lm/lm-error';
import { LmScorer, type LmScorerOptions } from '../sidecar/lm/scorer';
import { LmServer } from '../sidecar/lm/serve';
import { fitContinuations } from '../sidecar/lsr/fit-queries';
import type { TrainingQuery } from '../sidecar/lsr/training-queries';
import { CopyLm } from './fixtures/lm/copy-lm';
import { sendError, startInterposer, type Intercept, type InterceptedRequest } from './fixtures/lm/interposer';

const PAIR = { doc: 'function add(a, b) { return a + b; }', context: 'const total =', continuation: ' add(1, 2);' };
type Json = Record<string, any>;

const isCompletion = (req: InterceptedRequest) => req.path === '/v1/completions';
const isScoring = (req: InterceptedRequest) => isCompletion(req) && Array.isArray(req.body?.prompt) && Array.isArray(req.body.prompt[0]);

describe('the teacher is checked: answers that cannot be true are refused', () => {
  const server = new LmServer(new CopyLm());
  let url: string;
  const proxies: { close: () => Promise<void> }[] = [];
  const scorer = (baseUrl: string, extra: Partial<LmScorerOptions> = {}) => new LmScorer({ baseUrl, model: 'copy-lm', retries: 1, retryBaseMs: 5, ...extra });
  /** Passes matching requests to the real server and rewrites its JSON answer. */
  const rewriting = async (matches: (req: InterceptedRequest) => boolean, rewrite: (body: Json, req: InterceptedRequest) => void, extra?: Intercept) => {
    const proxy = await startInterposer(url, async (req, res) => {
      if (extra && (await extra(req, res))) return true;
      if (!matches(req)) return false;
      const upstream = await fetch(url.replace(/\/v1$/, '') + req.path, { method: req.method, headers: { 'content-type': 'application/json' }, body: JSON.stringify(req.body) });
      const body = (await upstream.json()) as Json;
      rewrite(body, req);
      res.writeHead(upstream.status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body));
      return true;
    });
    proxies.push(proxy);
    return proxy;
  };
  const rejectsAs = (kind: string, pattern: RegExp) => (err: LmError) => {
    assert.equal(err.kind, kind, err.message);
    assert.match(err.message, pattern);
    return true;
  };

  before(async () => {
    url = await server.listen(0);
  });
  after(async () => {
    for (const proxy of proxies) await proxy.close();
    await server.close();
  });

  test('positive log-probabilities: refused at the probe, saying what the server returned', async () => {
    const proxy = await rewriting(isCompletion, (body) => {
      for (const c of body.choices) c.logprobs.token_logprobs = c.logprobs.token_logprobs.map((v: number | null) => (v === null ? v : 0.69));
    });
    await assert.rejects(scorer(proxy.url).score([PAIR]), rejectsAs('malformed', /probe of .*\/v1\/completions .*prompt token 1 has log-prob 0\.69, above 0/));
  });

  test('a lie only in scoring answers is caught there: one impossible value fails the batch, never a silent score', async () => {
    const proxy = await rewriting(isScoring, (body) => {
      body.choices[0].logprobs.token_logprobs[3] = 1.5;
    });
    await assert.rejects(scorer(proxy.url).score([PAIR]), rejectsAs('malformed', /prompt token 3 has log-prob 1\.5, above 0.*cannot be used as a training signal/));
  });

  test('answers shifted by one token (the generated token in place, the first null dropped) are refused', async () => {
    const proxy = await rewriting(isCompletion, (body) => {
      for (const c of body.choices) c.logprobs.token_logprobs = [...c.logprobs.token_logprobs.slice(1), -0.5];
    });
    await assert.rejects(scorer(proxy.url).score([PAIR]), rejectsAs('malformed', /the first prompt token has a log-prob/));
  });

  test('one entry too many (a generated token appended although max_tokens is 0) is refused', async () => {
    const proxy = await rewriting(isCompletion, (body) => {
      for (const c of body.choices) {
        c.logprobs.token_logprobs.push(-0.1);
        c.logprobs.text_offset.push(c.logprobs.text_offset.at(-1) + 1);
      }
    });
    await assert.rejects(scorer(proxy.url).score([PAIR]), rejectsAs('malformed', /token_logprobs has \d+ entries for a \d+-token prompt with max_tokens 0 \(expected \d+\)/));
    // Without /tokenize the count comes from the text offsets: a token past the prompt end with max_tokens 0.
    const noTokenize = await rewriting(
      isCompletion,
      (body) => {
        for (const c of body.choices) {
          c.logprobs.token_logprobs.push(-0.1);
          c.logprobs.text_offset.push(10_000);
        }
      },
      (req, res) => (req.path === '/tokenize' ? sendError(res, 404, 'Not Found') : false),
    );
    await assert.rejects(scorer(noTokenize.url).score([PAIR]), rejectsAs('malformed', /1 tokens past the end of the prompt, with max_tokens 0/));
  });

  test('a prompt-token count that does not match what was sent is refused', async () => {
    const proxy = await rewriting(isScoring, (body) => {
      body.usage.prompt_tokens += 1;
    });
    await assert.rejects(scorer(proxy.url).score([PAIR]), rejectsAs('malformed', /reports \d+ prompt tokens for \d+ sent/));
  });

  test('echoed token ids (vLLM return_tokens_as_token_ids) must be the prompt\'s own', async () => {
    const asked: unknown[] = [];
    const ids = (req: InterceptedRequest) => (req.body?.prompt as number[][])[0];
    const honest = await rewriting(isScoring, (body, req) => {
      asked.push(req.body?.return_tokens_as_token_ids);
      body.choices[0].logprobs.tokens = ids(req).map((id) => `token_id:${id}`);
    });
    const [score] = await scorer(honest.url).score([PAIR]);
    assert.ok(score.logProb < 0);
    assert.deepEqual(asked, [true]);
    const swapped = await rewriting(isScoring, (body, req) => {
      const tokens = ids(req).map((id) => `token_id:${id}`);
      tokens[2] = 'token_id:99999';
      body.choices[0].logprobs.tokens = tokens;
    });
    await assert.rejects(scorer(swapped.url).score([PAIR]), rejectsAs('malformed', /echoed token 2 is token_id:99999, but the prompt has token_id:\d+ there/));
  });

  test('a server failing every probe with 500 is reported as failing, not as unable to return log-probabilities', async () => {
    const proxy = await startInterposer(url, (req, res) => (req.path === '/v1/models' ? false : sendError(res, 500, 'CUDA out of memory')));
    proxies.push(proxy);
    await assert.rejects(scorer(proxy.url).score([PAIR]), rejectsAs('server', /failed every probe with an internal error .*CUDA out of memory.*check its log/));
  });

  test('a web page instead of an API: one line saying it is not an OpenAI-compatible endpoint, never the page', async () => {
    const page = http.createServer((_, res) => {
      res.writeHead(404, { 'content-type': 'text/html' });
      res.end(`<!DOCTYPE html><html><body><h1>Not Found</h1>${'<p>padding</p>'.repeat(500)}</body></html>`);
    });
    await new Promise<void>((resolve) => page.listen(0, '127.0.0.1', resolve));
    try {
      const base = `http://127.0.0.1:${(page.address() as net.AddressInfo).port}`;
      await assert.rejects(scorer(`${base}/v1`).score([PAIR]), (err: LmError) => {
        assert.match(err.message, /GET http:\/\/127\.0\.0\.1:\d+\/v1\/models answered 404: answered with a text\/html body that is not an OpenAI-style JSON error: this does not look like an OpenAI-compatible endpoint/);
        assert.doesNotMatch(err.message, /<html|padding/);
        return true;
      });
    } finally {
      page.close();
    }
  });

  test('a base URL without /v1 gets the hint to add it', async () => {
    const root = url.replace(/\/v1$/, '');
    await assert.rejects(scorer(root).score([PAIR]), rejectsAs('not-found', new RegExp(`try --lm-url ${root.replace(/[.]/g, '\\.')}/v1`)));
  });

  test('a hung server (accepts, never answers) is reported within the probe timeout, not after minutes of retries', async () => {
    const sockets: net.Socket[] = [];
    const hung = net.createServer((socket) => sockets.push(socket));
    await new Promise<void>((resolve) => hung.listen(0, '127.0.0.1', resolve));
    try {
      const started = Date.now();
      const s = scorer(`http://127.0.0.1:${(hung.address() as net.AddressInfo).port}/v1`, { probeTimeoutMs: 300, retries: 4 });
      await assert.rejects(s.score([PAIR]), rejectsAs('timeout', /did not answer GET .*\/v1\/models within 300 ms; is it hung/));
      assert.ok(Date.now() - started < 3000, `took ${Date.now() - started} ms`);
      assert.equal(s.stats().requests, 2, 'one try and one retry');
    } finally {
      for (const socket of sockets) socket.destroy();
      hung.close();
    }
  });

  test('/tokenize without /detokenize: scores in text mode, with a note that says so', async () => {
    const proxy = await startInterposer(url, (req, res) => (req.path === '/detokenize' ? sendError(res, 404, 'Not Found') : false));
    proxies.push(proxy);
    const s = scorer(proxy.url);
    const caps = await s.capabilities();
    assert.equal(caps.tokenize, false);
    assert.match(caps.notes.join('\n'), /\/detokenize is missing or unusable, so prompts go as text/);
    const [viaText] = await s.score([PAIR]);
    const [viaIds] = await scorer(url).score([PAIR]);
    assert.ok(Math.abs(viaText.logProb - viaIds.logProb) < 1e-6);
  });

  test('the API key goes as a bearer token to that server; without a key no Authorization header is sent', async () => {
    const seen: (string | undefined)[] = [];
    const spy = http.createServer(async (req, res) => {
      seen.push(req.headers.authorization);
      const chunks: Buffer[] = [];
      for await (const c of req) chunks.push(c as Buffer);
      const upstream = await fetch(url.replace(/\/v1$/, '') + req.url, { method: req.method, headers: { 'content-type': 'application/json' }, body: chunks.length ? Buffer.concat(chunks) : undefined });
      res.writeHead(upstream.status, { 'content-type': 'application/json' });
      res.end(await upstream.text());
    });
    await new Promise<void>((resolve) => spy.listen(0, '127.0.0.1', resolve));
    try {
      const base = `http://127.0.0.1:${(spy.address() as net.AddressInfo).port}/v1`;
      await scorer(base).score([PAIR]);
      assert.ok(seen.length > 2 && seen.every((h) => h === undefined), JSON.stringify(seen));
      seen.length = 0;
      await scorer(base, { apiKey: 'sk-test' }).score([PAIR]);
      assert.ok(seen.length > 2 && seen.every((h) => h === 'Bearer sk-test'), JSON.stringify(seen));
    } finally {
      spy.close();
    }
  });

  test('budgets follow the served context length: max_model_len from /v1/models, or the server\'s own error', async () => {
    const short = await rewriting((req) => req.path === '/v1/models', (body) => {
      body.data[0].max_model_len = 300;
    });
    const setup = await scorer(short.url).setup();
    assert.deepEqual(setup.budgets.budgets, { doc: 98, context: 98, continuation: 98 });
    assert.match(setup.budgets.summary, /LM context 300 tokens; token budgets doc 98, context 98, continuation 98 tokens \(doc, context, continuation shrunk/);

    // No context length anywhere: the first too-long prompt's 400 says it, the budgets are sized to it and the batch is resent.
    const silent = await rewriting(
      (req) => req.path === '/v1/models' || req.path === '/tokenize',
      (body) => {
        if (Array.isArray(body.data)) delete body.data[0].max_model_len;
        delete body.max_model_len;
      },
      (req, res) => (isScoring(req) && (req.body!.prompt as number[][]).some((p) => p.length > 100) ? sendError(res, 400, "This model's maximum context length is 100 tokens. However, you requested 300 tokens.") : false),
    );
    const s = scorer(silent.url, { batchSize: 1 });
    const long = { doc: ' alpha'.repeat(200), context: ' beta'.repeat(200), continuation: ' gamma delta;' };
    // Four batches in flight at once, all built with the old budgets: each one resends, not only the first to fail.
    const scores = await s.score([long, { ...long, continuation: ' gamma;' }, { ...long, continuation: ' delta;' }, { ...long, continuation: ' epsilon;' }]);
    assert.ok(scores.every((score) => score.tokens > 0));
    assert.deepEqual((await s.setup()).budgets.budgets, { doc: 32, context: 32, continuation: 32 });
  });
});

describe('token budgets', () => {
  test('unset budgets default to 128 and shrink in proportion to fit; set ones are kept or refused', () => {
    assert.deepEqual(resolveBudgets({}, 4096).budgets, { doc: 128, context: 128, continuation: 128 });
    assert.deepEqual(resolveBudgets({}, 512).budgets, { doc: 128, context: 128, continuation: 128 }, '384 + 4 fit a 512-token model');
    assert.deepEqual(resolveBudgets({ continuation: 200 }, 300).budgets, { doc: 48, context: 48, continuation: 200 });
    assert.deepEqual(resolveBudgets({ doc: 64 }, undefined).budgets, { doc: 64, context: 128, continuation: 128 });
    assert.throws(() => resolveBudgets({ doc: 200, context: 200, continuation: 200 }, 512), /context is 512 tokens, too short .*lower --doc-tokens 200, --context-tokens 200, --continuation-tokens 200/);
    assert.throws(() => resolveBudgets({ continuation: 280 }, 300), /too short/, 'the unset budgets would drop below a usable size');
  });
});

describe('fitting continuations to the LM budget', () => {
  const query = (continuation: string): TrainingQuery => ({ id: 'q', path: '/w/a.ts', context: 'x\n', continuation, continuationStart: 10, continuationEnd: 10 + continuation.split('\n').length - 1 });
  /** One token per word, plus the junction token, as LmScorer.continuationCost counts. */
  const words = async (text: string) => text.split(/\s+/).filter(Boolean).length + 1;

  test('shortens by whole lines from the end, keeps what fits, drops what cannot', async () => {
    const fits = query('a b\nc d');
    const long = query('a b c\nd e f\ng h i\nj k l');
    const hopeless = query('a b c d e f g h\ni');
    const oneLine = query('a b c d e f g h');
    const { queries, shortened, dropped } = await fitContinuations([fits, long, hopeless, oneLine], words, 7);
    assert.equal(shortened, 2);
    assert.equal(dropped, 1);
    assert.deepEqual(queries.map((q) => q.continuation), ['a b\nc d', 'a b c\nd e f', 'a b c d e f ']);
    assert.equal(queries[1].continuationEnd, 11, 'two lines kept: lines 10-11');
    assert.equal(queries[0], fits, 'a query that fits is passed through unchanged');
  });
});
