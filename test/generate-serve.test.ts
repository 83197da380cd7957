import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import OpenAI, { APIError, AuthenticationError, BadRequestError, NotFoundError } from 'openai';
import { Generator } from '../sidecar/generate/generator';
import { CompletionServer, type CompletionServerOptions } from '../sidecar/generate/openai-server';
import { indexRetriever } from '../sidecar/generate/retrieval';
import { WorkspaceIndex } from '../sidecar/index/workspace-index';
import { LmServer } from '../sidecar/lm/serve';
import { CopyLm } from './fixtures/lm/copy-lm';
import { startInterposer } from './fixtures/lm/interposer';
import { makeTree } from './helpers/temp-tree';

const FILES = {
  'math.js': 'function sum(a, b) {\n  return a + b;\n}\n\nfunction product(a, b) {\n  return a * b;\n}\n',
  'strings.js': 'function shout(text) {\n  return text.toUpperCase() + "!";\n}\n',
};
const PROMPT = 'function add(a, b) {\n  return a';

/** A lexical index of FILES, the copy-LM behind an interposer (to count its requests), and the endpoint in front. */
async function withEndpoint(options: Partial<CompletionServerOptions>, run: (ctx: { url: string; root: string; generator: Generator; upstreamRequests: () => number }) => Promise<void>): Promise<void> {
  const tree = makeTree(FILES);
  const index = await WorkspaceIndex.open(`${tree.root}/.index`);
  const lm = new LmServer(new CopyLm('copy-lm', 4096));
  const lmUrl = await lm.listen(0);
  const proxy = await startInterposer(lmUrl, () => false);
  const generator = new Generator({ baseUrl: proxy.url, model: 'copy-lm', retries: 0, retriever: indexRetriever(() => index) });
  const server = new CompletionServer({ generator, modelName: 'replug-copy', mode: 'replug', k: 2, ...options });
  try {
    await index.update([tree.root]);
    const url = await server.listen(0);
    await run({ url, root: tree.root, generator, upstreamRequests: () => proxy.counts.get('/v1/completions') ?? 0 });
  } finally {
    await server.close();
    await proxy.close();
    await lm.close();
    await index.close();
    tree.cleanup();
  }
}

const client = (url: string, apiKey = 'none') => new OpenAI({ baseURL: url, apiKey, maxRetries: 0 });

test('the openai client lists the model and gets the same greedy completion the engine makes, with the passages used', async () => {
  await withEndpoint({}, async ({ url, generator }) => {
    const openai = client(url);
    const models = await openai.models.list();
    assert.deepEqual(models.data.map((m) => m.id), ['replug-copy']);
    const response = await openai.completions.create({ model: 'replug-copy', prompt: PROMPT, max_tokens: 6, temperature: 0 });
    const direct = await generator.complete({ prompt: PROMPT, mode: 'replug', k: 2, maxTokens: 6, temperature: 0, stop: [] });
    assert.equal(response.choices[0].text, direct.text);
    assert.equal(response.choices[0].finish_reason, 'length');
    assert.equal(response.object, 'text_completion');
    assert.equal(response.usage?.completion_tokens, 6);
    const replug = (response as unknown as { replug: { passages: { path: string; weight: number }[] } }).replug;
    assert.equal(replug.passages.length, 2);
    assert.ok(replug.passages[0].path.endsWith('math.js'));
    assert.ok(Math.abs(replug.passages.reduce((s, p) => s + p.weight, 0) - 1) < 1e-9);
  });
});

test('streaming sends the same text as server-sent events, then the finish reason and (when asked) the usage', async () => {
  await withEndpoint({}, async ({ url }) => {
    const openai = client(url);
    const request = { model: 'replug-copy', prompt: PROMPT, max_tokens: 12, temperature: 0, stop: ['\n'] };
    const whole = await openai.completions.create(request);
    const stream = await openai.completions.create({ ...request, stream: true, stream_options: { include_usage: true } });
    let text = '';
    const finishes: (string | null)[] = [];
    let usage: OpenAI.CompletionUsage | undefined;
    for await (const chunk of stream) {
      for (const choice of chunk.choices) {
        text += choice.text;
        finishes.push(choice.finish_reason);
      }
      if (chunk.usage) usage = chunk.usage;
    }
    assert.equal(text, whole.choices[0].text);
    assert.equal(whole.choices[0].finish_reason, 'stop');
    assert.ok(finishes.length >= 2, `${finishes.length} chunks`);
    assert.equal(finishes.at(-1), 'stop');
    assert.ok(finishes.slice(0, -1).every((f) => f === null));
    assert.equal(usage?.completion_tokens, whole.usage?.completion_tokens);
  });
});

type WithReplug = { replug: { mode: string; passages: { path: string }[] } };

test('a request-level replug field picks the mode and names the prompt’s own file, which is then never retrieved', async () => {
  await withEndpoint({}, async ({ url, root }) => {
    const openai = client(url);
    const create = (replug: unknown) => openai.completions.create({ model: 'replug-copy', prompt: PROMPT, max_tokens: 1, temperature: 0, replug } as OpenAI.CompletionCreateParamsNonStreaming) as unknown as Promise<WithReplug>;
    assert.deepEqual((await create({ mode: 'none' })).replug.passages, []);
    const plain = await create(undefined);
    assert.ok(plain.replug.passages[0].path.endsWith('math.js'));
    const own = await create({ source: { path: `${root}/math.js` } });
    assert.equal(own.replug.mode, 'replug');
    assert.ok(own.replug.passages.length > 0 && own.replug.passages.every((p) => !p.path.endsWith('math.js')));
    await assert.rejects(create({ mode: 'fancy' }), /replug.mode must be one of replug, concat, none/);
  });
});

test('an API key is required when set, compared in constant time; a wrong one is a 401', async () => {
  await withEndpoint({ apiKey: 's3cret-key' }, async ({ url }) => {
    await assert.rejects(client(url, 'wrong').models.list(), AuthenticationError);
    await assert.rejects(client(url, 's3cret-key-and-more').models.list(), AuthenticationError);
    const missing = await fetch(`${url}/models`);
    assert.equal(missing.status, 401);
    assert.equal(((await missing.json()) as { error: { type: string } }).error.type, 'authentication_error');
    const ok = await client(url, 's3cret-key').completions.create({ model: 'replug-copy', prompt: PROMPT, max_tokens: 1, temperature: 0 });
    assert.equal(ok.choices.length, 1);
  });
});

test('bad requests get OpenAI-shaped errors that say what to change', async () => {
  await withEndpoint({}, async ({ url }) => {
    const openai = client(url);
    await assert.rejects(openai.completions.create({ model: 'gpt-4', prompt: 'x' }), (err: unknown) => err instanceof NotFoundError && /serves "replug-copy"/.test(err.message));
    await assert.rejects(openai.completions.create({ model: 'replug-copy', prompt: 'x', n: 2 }), (err: unknown) => err instanceof BadRequestError && /n = 1/.test(err.message));
    await assert.rejects(openai.completions.create({ model: 'replug-copy', prompt: 'x', logprobs: 3 }), BadRequestError);
    await assert.rejects(openai.completions.create({ model: 'replug-copy', prompt: 'x', max_tokens: 100_000 }), /max_tokens must be an integer from 1 to 4096/);
    // A body declared over the limit is refused before it is read.
    const status = await new Promise<number | undefined>((resolve, reject) => {
      const req = http.request(`${url}/completions`, { method: 'POST', headers: { 'content-type': 'application/json', 'content-length': 5 * 1024 * 1024 } }, (res) => {
        res.resume();
        resolve(res.statusCode);
      });
      req.on('error', reject);
      req.write('{"model": "replug-copy", "prompt": "');
    });
    assert.equal(status, 413);
    const notJson = await fetch(`${url}/completions`, { method: 'POST', body: '{' });
    assert.equal(notJson.status, 400);
    assert.match(((await notJson.json()) as { error: { message: string } }).error.message, /not JSON/);
  });
});

test('a dead upstream is a 502 that names it; the client sees the reason, not a hang', async () => {
  const generator = new Generator({ baseUrl: 'http://127.0.0.1:9/v1', model: 'copy-lm', retries: 0 });
  const dead = new CompletionServer({ generator, modelName: 'replug-copy', mode: 'none', k: 0 });
  const url = await dead.listen(0);
  try {
    for (const stream of [false, true]) {
      await assert.rejects(client(url).completions.create({ model: 'replug-copy', prompt: 'x', max_tokens: 1, stream }), (err: unknown) => {
        assert.ok(err instanceof APIError);
        assert.equal(err.status, 502);
        assert.match(err.message, /cannot reach the LM server \(GET http:\/\/127\.0\.0\.1:9\/v1\/models/);
        return true;
      });
    }
  } finally {
    await dead.close();
  }
});

test('a client that stops reading a stream stops the generation upstream', async () => {
  await withEndpoint({}, async ({ url, upstreamRequests }) => {
    const stream = await client(url).completions.create({ model: 'replug-copy', prompt: PROMPT, max_tokens: 400, temperature: 0, stream: true });
    let chunks = 0;
    for await (const _ of stream) if (++chunks === 3) break; // closes the connection
    await new Promise((r) => setTimeout(r, 500));
    const after = upstreamRequests();
    await new Promise((r) => setTimeout(r, 500));
    assert.equal(upstreamRequests(), after, 'no more upstream requests once the client left');
    assert.ok(after < 2 * 40, `${after} upstream completions requests (400 tokens would take 800)`);
  });
});
