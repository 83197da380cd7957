import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { LmServer } from '../sidecar/lm/serve';
import { CopyLm } from './fixtures/lm/copy-lm';

type Json = Record<string, any>;

describe('OpenAI-compatible LM server (copy-LM)', () => {
  const model = new CopyLm();
  const server = new LmServer(model);
  let url: string;
  let root: string;
  const post = async (path: string, body: unknown): Promise<{ status: number; json: Json }> => {
    const response = await fetch(path.startsWith('/v1') ? root + path : root + path, { method: 'POST', headers: { 'content-type': 'application/json' }, body: typeof body === 'string' ? body : JSON.stringify(body) });
    return { status: response.status, json: (await response.json()) as Json };
  };
  before(async () => {
    url = await server.listen(0);
    root = url.replace(/\/v1$/, '');
  });
  after(() => server.close());

  test('listens on 127.0.0.1 with a free port and lists its model', async () => {
    assert.match(url, /^http:\/\/127\.0\.0\.1:\d+\/v1$/);
    const body = (await (await fetch(`${url}/models`)).json()) as Json;
    assert.equal(body.object, 'list');
    assert.deepEqual(body.data.map((m: Json) => m.id), ['copy-lm']);
    assert.equal(body.data[0].max_model_len, model.maxContext);
  });

  test('echo + logprobs: tokens, null first logprob, text_offset, top_logprobs and usage in vLLM shapes', async () => {
    const prompt = 'a b a b';
    const { status, json } = await post('/v1/completions', { model: 'copy-lm', prompt, echo: true, logprobs: 2, max_tokens: 0 });
    assert.equal(status, 200);
    assert.equal(json.object, 'text_completion');
    const [choice] = json.choices;
    assert.equal(choice.text, prompt);
    const ids = model.tokenize(prompt, true);
    const dists = model.logProbs(ids);
    const lp = choice.logprobs;
    assert.deepEqual(lp.tokens, ['', 'a', ' b', ' a', ' b']);
    assert.deepEqual(lp.text_offset, [0, 0, 1, 3, 5]);
    assert.equal(lp.token_logprobs[0], null);
    for (let i = 1; i < ids.length; i++) assert.equal(lp.token_logprobs[i], dists[i - 1][ids[i]]);
    assert.equal(lp.top_logprobs[0], null);
    assert.deepEqual(Object.keys(lp.top_logprobs[4]).sort(), [' b', 'a']); // top-2 ties resolve to the lower id; the chosen token is added
    assert.ok(Object.keys(lp.top_logprobs[1]).length >= 2);
    assert.deepEqual(json.usage, { prompt_tokens: ids.length, completion_tokens: 0, total_tokens: ids.length });
  });

  test('four prompt forms (string, ids, list of strings, list of ids) give one choice each', async () => {
    const ids = model.tokenize('x y x', true);
    const forms: unknown[] = ['x y x', ids, ['x y x', 'y'], [ids, ids.slice(0, 2)]];
    const counts = [];
    for (const prompt of forms) {
      const { status, json } = await post('/v1/completions', { model: 'copy-lm', prompt, echo: true, logprobs: 0, max_tokens: 0 });
      assert.equal(status, 200);
      counts.push(json.choices.length);
      assert.deepEqual(json.choices[0].logprobs.token_logprobs.slice(1), model.logProbs(ids).slice(0, -1).map((d, i) => d[ids[i + 1]]));
    }
    assert.deepEqual(counts, [1, 1, 2, 2]);
  });

  test('greedy generation continues the copied pattern; without echo only generated tokens are reported', async () => {
    const { json } = await post('/v1/completions', { model: 'copy-lm', prompt: 'a,b;a,b;a', max_tokens: 4, logprobs: 0 });
    const [choice] = json.choices;
    assert.equal(choice.text, ',b;a');
    assert.equal(choice.logprobs.tokens.length, 4);
    assert.equal(choice.logprobs.text_offset[0], 0);
    assert.ok(choice.logprobs.token_logprobs.every((v: number) => typeof v === 'number'));
    assert.equal(json.usage.completion_tokens, 4);
  });

  test('prompt_logprobs: per prompt token {id: {logprob, rank, decoded_token}}, null first', async () => {
    const ids = model.tokenize('m n m n', true);
    const { json } = await post('/v1/completions', { model: 'copy-lm', prompt: ids, max_tokens: 1, prompt_logprobs: 0 });
    const entries = json.choices[0].prompt_logprobs;
    assert.equal(entries.length, ids.length);
    assert.equal(entries[0], null);
    const dists = model.logProbs(ids);
    for (let i = 1; i < ids.length; i++) {
      const entry = entries[i][String(ids[i])];
      assert.equal(entry.logprob, dists[i - 1][ids[i]]);
      assert.ok(entry.rank >= 1);
      assert.equal(entry.decoded_token, model.decode([ids[i]]).text);
    }
  });

  test('/tokenize and /detokenize in vLLM shapes', async () => {
    const tok = await post('/tokenize', { model: 'copy-lm', prompt: 'hello world', return_token_strs: true });
    assert.deepEqual(tok.json.token_strs, ['', 'hello', ' world']);
    assert.equal(tok.json.count, 3);
    assert.equal(tok.json.max_model_len, model.maxContext);
    const plain = await post('/tokenize', { model: 'copy-lm', prompt: 'hello world', add_special_tokens: false });
    assert.deepEqual(plain.json.tokens, tok.json.tokens.slice(1));
    const detok = await post('/detokenize', { model: 'copy-lm', tokens: tok.json.tokens });
    assert.equal(detok.json.prompt, 'hello world');
  });

  test('errors: unknown model 404, over-long prompt 400 with the context length, bad body 400, unknown route 404', async () => {
    const wrong = await post('/v1/completions', { model: 'gpt-nope', prompt: 'x' });
    assert.equal(wrong.status, 404);
    assert.match(wrong.json.error.message, /`gpt-nope` does not exist/);
    const long = await post('/v1/completions', { model: 'copy-lm', prompt: 'w '.repeat(model.maxContext), max_tokens: 0 });
    assert.equal(long.status, 400);
    assert.match(long.json.error.message, /maximum context length is 8192 tokens/);
    const broken = await post('/v1/completions', '{"model": ');
    assert.equal(broken.status, 400);
    assert.match(broken.json.error.message, /not a JSON object/);
    const n2 = await post('/v1/completions', { model: 'copy-lm', prompt: 'x', n: 2 });
    assert.equal(n2.status, 400);
    const route = await post('/v1/chat/completions', { model: 'copy-lm' });
    assert.equal(route.status, 404);
  });
});

describe('copy-LM teacher', () => {
  test('a continuation is likelier when the passage contains it', () => {
    const model = new CopyLm();
    const score = (doc: string) => {
      const prefix = model.tokenize(`${doc}\nfunction total(items) {`, true);
      const whole = model.tokenize(`${doc}\nfunction total(items) { return items.reduce(add, 0); }`, true);
      const dists = model.logProbs(whole);
      let sum = 0;
      for (let i = prefix.length; i < whole.length; i++) sum += dists[i - 1][whole[i]];
      return sum;
    };
    const relevant = score('const sum = (xs) => xs.reduce(add, 0);');
    const unrelated = score('class Logger { warn(msg) { console.warn(msg); } }');
    assert.ok(relevant > unrelated + 5, `relevant ${relevant} vs unrelated ${unrelated}`);
  });
});
