import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { LmError } from '../sidecar/lm/lm-error';
import { LmScorer, type LmScorerOptions, type ScorePair } from '../sidecar/lm/scorer';
import { LmServer } from '../sidecar/lm/serve';
import { continuationRangeByOffsets, continuationStartByIds } from '../sidecar/lm/span';
import { CopyLm } from './fixtures/lm/copy-lm';
import { sendError, startInterposer, type Intercept } from './fixtures/lm/interposer';

const model = new CopyLm();

/** log P(y | prefix) straight from the model, with y's tokens starting at `start` in tokenize(prefix + y). */
function direct(prefix: string, y: string, start = model.tokenize(prefix, true).length): { logProb: number; perToken: number[] } {
  const whole = model.tokenize(prefix + y, true);
  const dists = model.logProbs(whole);
  const perToken = whole.slice(start).map((id, k) => dists[start + k - 1][id]);
  return { logProb: perToken.reduce((a, b) => a + b, 0), perToken };
}

const PAIRS: ScorePair[] = [
  { doc: 'function total(xs) { return xs.reduce(add, 0); }', context: 'function sum(xs) {', continuation: ' return xs.reduce(add, 0); }' },
  { doc: 'class Logger { warn(msg) { console.warn(msg); } }', context: 'function sum(xs) {', continuation: ' return xs.reduce(add, 0); }' },
  { doc: 'const total = items.reduce(add, 0);', context: 'let answer =', continuation: ' items.reduce(add, 0);' },
];

/** The parts of the probed capabilities these tests pin down. */
async function modes(s: LmScorer) {
  const { tokenize, source, maxTokens } = await s.capabilities();
  return { tokenize, source, maxTokens };
}

function assertMatchesDirect(scores: { logProb: number; tokens: number; perToken?: number[] }[], pairs = PAIRS): void {
  pairs.forEach((pair, i) => {
    const want = direct(`${pair.doc}\n${pair.context}`, pair.continuation);
    assert.ok(Math.abs(scores[i].logProb - want.logProb) < 1e-6, `pair ${i}: ${scores[i].logProb} vs ${want.logProb}`);
    assert.equal(scores[i].tokens, want.perToken.length);
    assert.deepEqual(scores[i].perToken?.map((v) => Math.fround(v)), want.perToken.map((v) => Math.fround(v)));
  });
}

describe('LmScorer against the copy-LM server', () => {
  const server = new LmServer(model);
  let url: string;
  const proxies: { close: () => Promise<void> }[] = [];
  const variant = async (intercept: Intercept) => {
    const proxy = await startInterposer(url, intercept);
    proxies.push(proxy);
    return proxy;
  };
  const scorer = (baseUrl: string, extra: Partial<LmScorerOptions> = {}) => new LmScorer({ baseUrl, model: 'copy-lm', retryBaseMs: 5, ...extra });
  before(async () => {
    url = await server.listen(0);
  });
  after(async () => {
    for (const proxy of proxies) await proxy.close();
    await server.close();
  });

  test('token-id path (server has /tokenize): sums exactly the model log-probs of y', async () => {
    const s = scorer(url);
    assert.deepEqual(await modes(s), { tokenize: true, source: 'echo', maxTokens: 0 });
    assertMatchesDirect(await s.score(PAIRS));
  });

  test('text_offset path (no /tokenize) gives the same scores', async () => {
    const proxy = await variant((req, res) => (req.path === '/tokenize' ? sendError(res, 404, 'Not Found') : false));
    const s = scorer(proxy.url);
    assert.deepEqual(await modes(s), { tokenize: false, source: 'echo', maxTokens: 0 });
    assertMatchesDirect(await s.score(PAIRS));
  });

  test('probe falls back to max_tokens 1 when max_tokens 0 is rejected, and ignores the generated token', async () => {
    const rejectZero: Intercept = (req, res) => (req.body?.max_tokens === 0 ? sendError(res, 400, 'max_tokens must be at least 1, got 0.') : false);
    const withTokenize = await variant(rejectZero);
    const noTokenize = await variant((req, res) => (req.path === '/tokenize' ? sendError(res, 404, 'Not Found') : rejectZero(req, res)));
    for (const [proxy, tokenize] of [[withTokenize, true], [noTokenize, false]] as const) {
      const s = scorer(proxy.url);
      assert.deepEqual(await modes(s), { tokenize, source: 'echo', maxTokens: 1 });
      assertMatchesDirect(await s.score(PAIRS));
    }
  });

  test('without echo support it uses prompt_logprobs; with neither it says the server cannot score', async () => {
    const noEcho = await variant((req, res) => (req.body?.echo ? sendError(res, 400, 'echo is not supported') : false));
    const s = scorer(noEcho.url);
    assert.deepEqual(await modes(s), { tokenize: true, source: 'prompt_logprobs', maxTokens: 1 });
    assertMatchesDirect(await s.score(PAIRS));
    const hopeless = await variant((req, res) => (req.body?.echo || req.path === '/tokenize' ? sendError(res, 400, 'unsupported') : false));
    await assert.rejects(scorer(hopeless.url).score(PAIRS), (err: LmError) => err.kind === 'unsupported' && /cannot return log-probabilities of prompt tokens/.test(err.message));
  });

  test('the passage that contains y makes y likelier (the teacher signal LSR learns from)', async () => {
    const [withAnswer, without] = await scorer(url).score(PAIRS.slice(0, 2));
    assert.ok(withAnswer.logProb > without.logProb + 5, `${withAnswer.logProb} vs ${without.logProb}`);
  });

  test('sends several prompts per request, bounded by batchSize', async () => {
    const sizes: number[] = [];
    const proxy = await variant((req) => {
      if (req.path === '/v1/completions' && Array.isArray(req.body?.prompt) && Array.isArray(req.body.prompt[0])) sizes.push(req.body.prompt.length);
      return false;
    });
    const pairs = Array.from({ length: 20 }, (_, i) => ({ doc: `doc ${i}`, context: `ctx ${i} =`, continuation: ` value${i};` }));
    const s = scorer(proxy.url, { batchSize: 8, concurrency: 3 });
    assertMatchesDirect(await s.score(pairs), pairs);
    assert.deepEqual(sizes.sort((a, b) => b - a), [8, 8, 4]);
    assert.equal(s.stats().completionRequests, 3);
  });

  test('keeps at most `concurrency` requests in flight', async () => {
    let inFlight = 0;
    let most = 0;
    const proxy = await variant(async () => {
      most = Math.max(most, ++inFlight);
      await new Promise((resolve) => setTimeout(resolve, 10));
      inFlight--;
      return false;
    });
    const pairs = Array.from({ length: 12 }, (_, i) => ({ doc: `d${i}`, context: `c${i}`, continuation: ` y${i}` }));
    assertMatchesDirect(await scorer(proxy.url, { concurrency: 3, batchSize: 1 }).score(pairs), pairs);
    assert.equal(most, 3);
  });

  test('caches scores by prompt: a repeated pair costs no request, duplicates in one call count as hits', async () => {
    const s = scorer(url);
    const first = await s.score([PAIRS[0], PAIRS[1], PAIRS[0]]);
    assert.equal(s.stats().cacheHits, 1);
    assert.deepEqual(first[2], first[0]);
    const requests = s.stats().completionRequests;
    const again = await s.score(PAIRS.slice(0, 2));
    assert.equal(s.stats().completionRequests, requests);
    assert.equal(s.stats().cacheHits, 3);
    assert.deepEqual(again, first.slice(0, 2));
    const stats = s.stats();
    assert.ok(stats.completionRequestsPerSecond > 0 && stats.tokensPerSecond > 0 && stats.promptTokens > 0);
    assert.equal(stats.scoredPairs, 5);
  });

  test('truncation: the doc keeps its start, the context keeps its end', async () => {
    let sent: number[] = [];
    const proxy = await variant((req) => {
      if (req.path === '/v1/completions' && Array.isArray(req.body?.prompt) && Array.isArray(req.body.prompt[0])) sent = req.body.prompt[0] as number[];
      return false;
    });
    const pair = { doc: 'alpha beta gamma delta', context: 'one two three four', continuation: ' five' };
    const [score] = await scorer(proxy.url, { docTokens: 3, contextTokens: 3 }).score([pair]);
    assert.equal(model.decode(sent).text, 'alpha beta gamma\n two three four five');
    assert.ok(Math.abs(score.logProb - direct('alpha beta gamma\n two three four', ' five').logProb) < 1e-6);
  });

  test('a continuation over its budget is an error, never silently cut; without /tokenize it is scored whole', async () => {
    const pair = { doc: 'd', context: 'c', continuation: ' a b c d e f' };
    await assert.rejects(scorer(url, { continuationTokens: 4 }).score([pair]), (err: LmError) => err.kind === 'over-budget' && /6 tokens, over its budget of 4/.test(err.message));
    // Budgets are character estimates without /tokenize: the continuation is never cut, so all 6 tokens are scored.
    const proxy = await variant((req, res) => (req.path === '/tokenize' ? sendError(res, 404, 'Not Found') : false));
    const [whole] = await scorer(proxy.url, { continuationTokens: 4 }).score([pair]);
    assert.equal(whole.tokens, 6);
  });

  test('a junction inside a token: the straddling token counts toward y, the same on both paths', async () => {
    // "ret" + "urn total;" tokenizes the whole as ... "return", " total", ";": "return" straddles the junction.
    const pair = { doc: 'return total;', context: 'x = 1;\nret', continuation: 'urn total;' };
    const prefix = `${pair.doc}\n${pair.context}`;
    const retIndex = model.tokenize(prefix, true).length - 1;
    const want = direct(prefix, pair.continuation, retIndex);
    const proxy = await variant((req, res) => (req.path === '/tokenize' ? sendError(res, 404, 'Not Found') : false));
    for (const baseUrl of [url, proxy.url]) {
      const [score] = await scorer(baseUrl).score([pair]);
      assert.equal(score.tokens, 3);
      assert.ok(Math.abs(score.logProb - want.logProb) < 1e-6);
    }
  });

  test('rejects an empty continuation and non-string fields with a clear message', async () => {
    await assert.rejects(scorer(url).score([{ doc: 'd', context: 'c', continuation: '' }]), /pair 0: continuation is empty/);
    await assert.rejects(scorer(url).score([{ doc: 'd', context: 3 as unknown as string, continuation: 'y' }]), /must be strings/);
  });
});

describe('continuation span rules', () => {
  test('token ids: y starts where tokenize(prefix) and tokenize(prefix + y) first differ', () => {
    assert.equal(continuationStartByIds([1, 5, 6], [1, 5, 6, 7, 8]), 3);
    assert.equal(continuationStartByIds([1, 5, 6], [1, 5, 9, 8]), 2); // 6 merged with y's start into 9
  });

  test('text offsets: straddling tokens count, tokens ending at the junction do not, generated tokens are excluded', () => {
    // prompt "abcdef" (6 chars), y = "def" at 3; tokens at 0 "ab", 2 "cd" (straddles), 4 "ef", then a generated token at 6.
    assert.deepEqual(continuationRangeByOffsets([0, 2, 4, 6], 6, 3), { start: 1, end: 3 });
    // Clean junction: "abc" | "def".
    assert.deepEqual(continuationRangeByOffsets([0, 3, 6], 6, 3), { start: 1, end: 2 });
    // Zero-width byte tokens of y's first (multi-byte) character share its offset and all count.
    assert.deepEqual(continuationRangeByOffsets([0, 0, 3, 3, 3, 4], 5, 3), { start: 2, end: 6 });
  });
});
