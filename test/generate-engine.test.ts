import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Generator, type GeneratorOptions } from '../sidecar/generate/generator';
import { indexRetriever, type RetrievedPassage } from '../sidecar/generate/retrieval';
import { TextStream } from '../sidecar/generate/text-stream';
import { WorkspaceIndex } from '../sidecar/index/workspace-index';
import { LmServer } from '../sidecar/lm/serve';
import { CopyLm } from './fixtures/lm/copy-lm';
import { sendError, startInterposer } from './fixtures/lm/interposer';
import { makeTree } from './helpers/temp-tree';

const passage = (id: string, text: string, similarity: number): RetrievedPassage => ({ id, path: `/ws/${id}.js`, startLine: 1, endLine: 3, text, similarity });
const PLUS = passage('plus', 'function sum(a, b) {\n  return a + b;\n}', 0.9);
const MINUS = passage('minus', 'function diff(a, b) {\n  return a - b;\n}', 0.5);
const PROMPT = 'function add(a, b) {\n  return a';

async function withServer(run: (url: string) => Promise<void>): Promise<void> {
  const server = new LmServer(new CopyLm('copy-lm', 4096));
  try {
    await run(await server.listen(0));
  } finally {
    await server.close();
  }
}

/** The server behind a proxy whose /v1/models says the model's context is `tokens` long. */
function withContextLength(url: string, tokens: number) {
  return startInterposer(url, async (req, res) => {
    if (req.path !== '/v1/models') return false;
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ object: 'list', data: [{ id: 'copy-lm', object: 'model', max_model_len: tokens }] }));
    return true;
  });
}

function generator(url: string, passages: RetrievedPassage[], extra: Partial<GeneratorOptions> = {}): Generator {
  return new Generator({ baseUrl: url, model: 'copy-lm', retries: 0, retriever: { retrieve: async (_q, k) => passages.slice(0, k) }, ...extra });
}

test('stop sequences end the text before them, even split across tokens; text that may become one is held back', () => {
  const s = new TextStream(['\n\n', 'END']);
  assert.equal(s.update('a'), 'a');
  assert.equal(s.update('a\n'), ''); // could be the start of "\n\n"
  assert.equal(s.update('a\nb'), '\nb');
  assert.equal(s.update('a\nbE'), '');
  assert.equal(s.update('a\nbEN'), '');
  assert.equal(s.update('a\nbENx\uFFFD'), 'ENx'); // a half character waits for its other bytes
  assert.equal(s.update('a\nbENxé\n\nmore'), 'é');
  assert.ok(s.stopped);
  assert.equal(s.text, 'a\nbENxé');
  assert.equal(s.update('a\nbENxé\n\nmore and more'), '');
  const open = new TextStream(['\n']);
  open.update('x');
  assert.equal(open.finish('xy'), 'y');
  assert.ok(!open.stopped);
});

test('the ensemble follows the retrieval weights: the likelier passage decides the next token', async () => {
  await withServer(async (url) => {
    const plusFirst = await generator(url, [PLUS, MINUS]).complete({ prompt: PROMPT, mode: 'replug', k: 2, maxTokens: 2 });
    assert.equal(plusFirst.text, ' + b');
    assert.ok(plusFirst.passages[0].weight > 0.98, `λ = softmax([9, 5]) puts ${plusFirst.passages[0].weight} on the first passage`);
    const flipped = [{ ...PLUS, similarity: 0.5 }, { ...MINUS, similarity: 0.9 }];
    const minusFirst = await generator(url, flipped).complete({ prompt: PROMPT, mode: 'replug', k: 2, maxTokens: 2 });
    assert.equal(minusFirst.text, ' - b');
    const none = await generator(url, [PLUS, MINUS]).complete({ prompt: PROMPT, mode: 'none', k: 2, maxTokens: 2 });
    assert.deepEqual(none.passages, []);
    assert.notEqual(none.text, ' + b');
  });
});

test('with one passage, REPLUG decoding is the server’s own greedy decoding of that passage’s prompt (concat, k = 1)', async () => {
  await withServer(async (url) => {
    const gen = generator(url, [PLUS, MINUS]);
    const request = { prompt: 'function mul(a, b) {\n', k: 1, maxTokens: 16 };
    const replug = await gen.complete({ ...request, mode: 'replug' });
    const concat = await gen.complete({ ...request, mode: 'concat' });
    assert.equal(replug.text, concat.text);
    assert.equal(replug.completionTokens, 16);
    assert.equal(replug.finishReason, 'length');
    // A step is one request per passage plus one /detokenize. A generator that has probed the server and tokenized
    // the prompt and passages (concat decodes nothing step by step), since gen has the step decodes above cached.
    const warm = generator(url, [PLUS, MINUS]);
    await warm.complete({ ...request, mode: 'concat', k: 2 });
    const twoPassages = await warm.complete({ ...request, mode: 'replug', k: 2 });
    assert.ok(twoPassages.requests >= 16 * 3 && twoPassages.requests <= 16 * 3 + 8, `${twoPassages.requests} requests for 16 tokens, k = 2`);
  });
});

test('streamed deltas add up to the text; a stop sequence ends it with finish_reason stop', async () => {
  await withServer(async (url) => {
    const gen = generator(url, [PLUS, MINUS]);
    for (const mode of ['replug', 'concat', 'none'] as const) {
      let streamed = '';
      const result = await gen.complete({ prompt: PROMPT, mode, k: 2, maxTokens: 30, stop: ['\n'] }, { onText: (d) => (streamed += d) });
      assert.equal(streamed, result.text, mode);
      assert.ok(result.text.length > 0 && !result.text.includes('\n'), `${mode}: ${JSON.stringify(result.text)}`);
      assert.equal(result.finishReason, 'stop', `${mode}: ${JSON.stringify(result.text)}`);
    }
  });
});

test('an abort stops generation at the next step and rejects with the abort reason', async () => {
  await withServer(async (url) => {
    const proxy = await startInterposer(url, () => false);
    try {
      const gen = generator(proxy.url, [PLUS, MINUS]);
      const abort = new AbortController();
      let deltas = 0;
      const pending = gen.complete({ prompt: PROMPT, mode: 'replug', k: 2, maxTokens: 200 }, {
        signal: abort.signal,
        onText: () => {
          if (++deltas === 2) abort.abort(new Error('user typed'));
        },
      });
      await assert.rejects(pending, /user typed/);
      const sent = proxy.counts.get('/v1/completions') ?? 0;
      await new Promise((r) => setTimeout(r, 300));
      assert.equal(proxy.counts.get('/v1/completions'), sent, 'no request after the abort settled');
      assert.ok(sent < 20, `${sent} completions requests before the abort`);
    } finally {
      await proxy.close();
    }
  });
});

test('without /tokenize and token ids the generator works on text: budgets in characters, tokens by their strings', async () => {
  await withServer(async (url) => {
    const proxy = await startInterposer(url, (req, res) => (req.path === '/tokenize' || req.path === '/detokenize' ? sendError(res, 404, 'Not Found') : false));
    try {
      const gen = generator(proxy.url, [PLUS, MINUS]);
      const result = await gen.complete({ prompt: PROMPT, mode: 'replug', k: 2, maxTokens: 2 });
      assert.equal(result.text, ' + b');
      assert.deepEqual(await gen.upstream.capabilities(), { tokenize: false, tokenIds: false, maxModelLen: 8192 });
    } finally {
      await proxy.close();
    }
  });
});

test('a token the server ended a sequence with ends the completion (finish_reason stop)', async () => {
  await withServer(async (url) => {
    // The copy-LM has no end token: this server makes " b" one, as vLLM reports an EOS (finish_reason stop).
    const proxy = await startInterposer(url, async (req, res) => {
      if (req.path !== '/v1/completions') return false;
      const upstream = await fetch(`${url}/completions`, { method: 'POST', body: JSON.stringify(req.body) });
      const body = (await upstream.json()) as { choices: { logprobs?: { tokens?: string[] }; finish_reason: string }[] };
      for (const choice of body.choices) {
        const sampled = choice.logprobs?.tokens?.at(-1);
        if (sampled !== undefined && req.body?.return_tokens_as_token_ids && sampled === bId) choice.finish_reason = 'stop';
      }
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body));
      return true;
    });
    const tokens = (await (await fetch(url.replace(/\/v1$/, '/tokenize'), { method: 'POST', body: JSON.stringify({ prompt: ' b', add_special_tokens: false }) })).json()) as { tokens: number[] };
    const bId = `token_id:${tokens.tokens[0]}`;
    try {
      const result = await generator(proxy.url, [PLUS, MINUS]).complete({ prompt: PROMPT, mode: 'replug', k: 2, maxTokens: 10 });
      assert.equal(result.text, ' +');
      assert.equal(result.finishReason, 'stop');
    } finally {
      await proxy.close();
    }
  });
});

test('a server that is down gives an error naming it; a model it does not serve is named with those it does', async () => {
  const gen = new Generator({ baseUrl: 'http://127.0.0.1:9/v1', model: 'copy-lm', retries: 0 });
  await assert.rejects(gen.complete({ prompt: 'x', mode: 'none', k: 0, maxTokens: 1 }), /cannot reach the LM server \(GET http:\/\/127\.0\.0\.1:9\/v1\/models/);
  await withServer(async (url) => {
    const other = new Generator({ baseUrl: url, model: 'gpt-x', retries: 0 });
    await assert.rejects(other.complete({ prompt: 'x', mode: 'none', k: 0, maxTokens: 1 }), /model "gpt-x" not served .*served models: "copy-lm"/);
  });
});

test('concat leaves out the lowest-ranked passages that do not fit the model’s context', async () => {
  await withServer(async (url) => {
    const proxy = await withContextLength(url, 40);
    try {
      const result = await generator(proxy.url, [PLUS, MINUS]).complete({ prompt: PROMPT, mode: 'concat', k: 2, maxTokens: 4 });
      assert.deepEqual(result.passages.map((p) => p.id), ['plus']);
      assert.equal(result.passages[0].weight, 1);
    } finally {
      await proxy.close();
    }
  });
});

test('the index retriever never returns passages overlapping the prompt’s own span', async () => {
  const tree = makeTree({
    'a.js': Array.from({ length: 60 }, (_, i) => `const value${i} = compute(${i});`).join('\n'),
    'b.js': 'const value7 = compute(7);\n',
  });
  const index = await WorkspaceIndex.open(`${tree.root}/.index`);
  try {
    await index.update([tree.root]);
    const retriever = indexRetriever(() => index);
    const all = await retriever.retrieve('const value7 = compute(7);', 10);
    assert.ok(all.some((p) => p.path.endsWith('a.js') && p.startLine <= 8 && p.endLine >= 8));
    const span = { path: `${tree.root}/a.js`, startLine: 5, endLine: 12 };
    const kept = await retriever.retrieve('const value7 = compute(7);', 10, span);
    assert.ok(kept.length > 0);
    for (const p of kept) assert.ok(p.path !== span.path || p.endLine < 5 || p.startLine > 12, `${p.path}:${p.startLine}-${p.endLine} overlaps 5-12`);
    assert.ok(kept.some((p) => p.path.endsWith('b.js')));
    // BM25 scores become similarities relative to the best hit.
    assert.equal(Math.max(...kept.map((p) => p.similarity)), 1);
    const wholeFile = await retriever.retrieve('const value7 = compute(7);', 10, { path: span.path });
    assert.ok(wholeFile.every((p) => p.path !== span.path));
  } finally {
    await index.close();
    tree.cleanup();
  }
});

test('sampling is reproducible from a seed and follows the temperature; greedy ignores the seed', async () => {
  await withServer(async (url) => {
    const gen = generator(url, [PLUS, MINUS]);
    const sample = (seed: number, temperature = 1.5) => gen.complete({ prompt: 'function mul(a, b) {\n', mode: 'replug', k: 2, maxTokens: 12, temperature, seed });
    const [a, b] = [await sample(1), await sample(1)];
    assert.equal(a.text, b.text);
    const texts = new Set<string>();
    for (let seed = 2; seed < 8; seed++) texts.add((await sample(seed)).text);
    assert.ok(texts.size > 1, 'different seeds draw different completions');
    assert.equal((await sample(1, 0)).text, (await sample(2, 0)).text);
  });
});

test('generation stops with finish_reason length where the model’s context is full', async () => {
  await withServer(async (url) => {
    const proxy = await withContextLength(url, 40);
    try {
      const result = await generator(proxy.url, [PLUS, MINUS]).complete({ prompt: PROMPT, mode: 'replug', k: 2, maxTokens: 100 });
      assert.equal(result.finishReason, 'length');
      assert.ok(result.completionTokens > 0 && result.completionTokens < 40, `${result.completionTokens} tokens`);
    } finally {
      await proxy.close();
    }
  });
});

test('a server with /tokenize that names tokens by text still ensembles, appending the chosen strings', async () => {
  await withServer(async (url) => {
    // Forwards completions without return_tokens_as_token_ids, as a server that does not know the field would answer.
    const proxy = await startInterposer(url, async (req, res) => {
      if (req.path !== '/v1/completions') return false;
      const { return_tokens_as_token_ids: _ignored, ...body } = req.body ?? {};
      const upstream = await fetch(`${url}/completions`, { method: 'POST', body: JSON.stringify(body) });
      res.writeHead(upstream.status, { 'content-type': 'application/json' });
      res.end(await upstream.text());
      return true;
    });
    try {
      const gen = generator(proxy.url, [PLUS, MINUS]);
      assert.equal((await gen.complete({ prompt: PROMPT, mode: 'replug', k: 2, maxTokens: 2 })).text, ' + b');
      assert.deepEqual(await gen.upstream.capabilities(), { tokenize: true, tokenIds: false, maxModelLen: 8192 });
    } finally {
      await proxy.close();
    }
  });
});
