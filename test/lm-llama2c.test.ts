import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { loadCheckpoint } from '../sidecar/lm/llama2c/checkpoint';
import { Llama2cModel } from '../sidecar/lm/llama2c/model';
import { BOS } from '../sidecar/lm/llama2c/tokenizer';
import { LmServer } from '../sidecar/lm/serve';
import { Llama2cReference } from './fixtures/lm/llama2c-reference';
import { needsStories, repoRoot, storiesModel, storiesTokenizer } from './fixtures/lm/stories';

function argmax(v: Float32Array): number {
  let best = 0;
  for (let i = 1; i < v.length; i++) if (v[i] > v[best]) best = i;
  return best;
}

/** Largest |graph − reference| over every log-prob the ONNX graph may differ by (float32 sums in another order). */
const TOLERANCE = 1e-4;

describe('llama2.c model (stories260K)', needsStories, () => {
  let model: Llama2cModel;
  let reference: Llama2cReference;
  before(async () => {
    model = await Llama2cModel.load(storiesModel, storiesTokenizer);
    reference = Llama2cReference.load(storiesModel);
  });
  after(() => model?.close());

  test('reads the header: dim 64, 5 layers, 8 heads over 4 kv heads, vocab 512, seq 512', () => {
    assert.deepEqual(model.config, { dim: 64, hiddenDim: 172, nLayers: 5, nHeads: 8, nKvHeads: 4, vocabSize: 512, seqLen: 512 });
    assert.equal(model.name, 'stories260K');
  });

  test('greedy generation from BOS tells the Lily story, in the graph as in the reference', async () => {
    for (const logProbs of [(ids: number[]) => model.logProbs(ids), async (ids: number[]) => reference.logProbs(ids)]) {
      const ids = [BOS];
      for (let step = 0; step < 16; step++) {
        const dists = await logProbs(ids);
        ids.push(argmax(dists[dists.length - 1]));
      }
      assert.match(model.decode(ids).text, /^Once upon a time, there was a little girl named Lily/);
    }
  });

  test(`prompts of different lengths batched together match the reference forward pass within ${TOLERANCE} on every log-prob`, async () => {
    const texts = [
      'Once upon a time, Tom found a shiny stone.',
      'Lily had a big red ball. She loved to play with it in the park every day. One day the ball rolled away and Lily was sad.',
      'x',
      'The cat sat on the mat. 日本 {"json": [1, 2]}\n\tindented();',
      // Longer than several of the graph's 64-query attention blocks.
      `Once upon a time, ${'there was a little girl named Lily who loved to play outside in the sun with her friends. '.repeat(6)}`,
    ];
    const prompts = texts.map((t) => model.tokenize(t, true));
    prompts.push([BOS]);
    // Issued together, so the queue runs them as one padded batch.
    const [dense, sparse] = await Promise.all([Promise.all(prompts.map((p) => model.logProbs(p))), Promise.all(prompts.map((p) => model.scoreTokens(p)))]);
    let worst = 0;
    prompts.forEach((ids, p) => {
      const want = reference.logProbs(ids);
      assert.equal(dense[p].length, ids.length);
      want.forEach((dist, i) => {
        for (let v = 0; v < dist.length; v++) worst = Math.max(worst, Math.abs(dense[p][i][v] - dist[v]));
        const s = sparse[p];
        if (i + 1 < ids.length) assert.ok(Math.abs(s.next[i] - dist[ids[i + 1]]) < TOLERANCE, `prompt ${p} position ${i}: next ${s.next[i]} vs ${dist[ids[i + 1]]}`);
        else assert.ok(Number.isNaN(s.next[i]), 'nothing follows the last token');
        assert.equal(s.best[i], argmax(dist), `prompt ${p} position ${i}: argmax`);
        assert.ok(Math.abs(s.bestLogProb[i] - dist[s.best[i]]) < TOLERANCE);
      });
    });
    assert.ok(worst < TOLERANCE, `largest difference ${worst}`);
  });

  test(`generation extends cached prefixes: each step runs only its new token, batched across sequences, within ${TOLERANCE} of the reference`, async () => {
    const sequences = ['Once upon a time', 'Tom and his dog went to the big park to play with a red ball.', 'The sun'].map((t) => model.tokenize(t, true));
    const before = model.positionsRun;
    const prompts = sequences.reduce((sum, ids) => sum + ids.length, 0); // the first step runs them whole
    for (let step = 0; step < 8; step++) {
      // All sequences at once, as REPLUG asks for each passage's next token: the extensions share a run.
      const dists = await Promise.all(sequences.map((ids) => model.nextLogProbs(ids)));
      sequences.forEach((ids, s) => {
        const want = reference.logProbs(ids).at(-1)!;
        for (let v = 0; v < want.length; v++) assert.ok(Math.abs(dists[s][v] - want[v]) < TOLERANCE, `sequence ${s} step ${step} token ${v}`);
        ids.push(argmax(want));
      });
    }
    assert.equal(model.positionsRun - before, prompts + 7 * sequences.length, 'seven steps of one new position per sequence');
    // Asking again for a sequence already run answers from the cache without a forward pass.
    const again = model.positionsRun;
    await model.nextLogProbs(sequences[0].slice(0, -1));
    assert.equal(model.positionsRun, again);
  });

  test('without room in the prefix cache, and for a sequence that leaves a cached path, results are the same', async () => {
    const uncached = await Llama2cModel.load(storiesModel, storiesTokenizer, { prefixCacheBytes: 0 });
    try {
      const ids = model.tokenize('Lily saw a bird in the tree', true);
      const forked = [...ids.slice(0, 4), ...model.tokenize(' cat', false)];
      // A cached prefix of 100 tokens, then 90 new ones: new positions across attention blocks, attending to the past.
      const story = model.tokenize('Tom had a red ball and he played with it every day in the garden near his house. '.repeat(8), true);
      for (const seq of [ids, ids.slice(0, 5), forked, story.slice(0, 100), story.slice(0, 190)]) {
        const want = reference.logProbs(seq).at(-1)!;
        for (const got of [await model.nextLogProbs(seq), await uncached.nextLogProbs(seq)]) {
          for (let v = 0; v < want.length; v++) assert.ok(Math.abs(got[v] - want[v]) < TOLERANCE);
        }
      }
    } finally {
      await uncached.close();
    }
  });

  test('served: greedy generation from BOS tells the Lily story, with echo (whole prompt scored) or without (cached prefix)', async () => {
    const server = new LmServer(model);
    const url = await server.listen(0);
    try {
      const complete = async (body: object) => {
        const response = await fetch(`${url}/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'stories260K', ...body }) });
        return ((await response.json()) as { choices: { text: string; logprobs: { token_logprobs: number[] } }[] }).choices[0];
      };
      const plain = await complete({ prompt: [BOS], max_tokens: 16, logprobs: 1 });
      assert.match(plain.text, /^Once upon a time, there was a little girl named Lily/);
      const echoed = await complete({ prompt: [BOS], max_tokens: 16, logprobs: 1, echo: true });
      assert.equal(echoed.text, plain.text);
      echoed.logprobs.token_logprobs.slice(1).forEach((lp, i) => assert.ok(Math.abs(lp - plain.logprobs.token_logprobs[i]) < TOLERANCE));
      // REPLUG's generation loop: one request per step, each prompt the last one plus the chosen token.
      const ids = model.tokenize('Ben found a shiny shell by the sea', true);
      const ran: number[] = [];
      for (let step = 0; step < 5; step++) {
        const before = model.positionsRun;
        const choice = await complete({ prompt: ids, max_tokens: 1, logprobs: 5 });
        ran.push(model.positionsRun - before);
        const next = argmax(reference.logProbs(ids).at(-1)!);
        assert.equal(choice.text, model.decode([ids[ids.length - 1], next]).text.slice(model.decode([ids[ids.length - 1]]).text.length));
        ids.push(next);
      }
      assert.deepEqual(ran.slice(1), [1, 1, 1, 1], `positions run per request: ${ran} (the prompt, then one per step)`);
    } finally {
      await server.close();
    }
  });

  test('every position is a normalised log-distribution, and prefixes score the same as whole sequences', async () => {
    const ids = model.tokenize('Once upon a time, Tom found a shiny stone.', true);
    const all = await model.logProbs(ids);
    assert.equal(all.length, ids.length);
    for (const dist of all) {
      const mass = dist.reduce((sum, lp) => sum + Math.exp(lp), 0);
      assert.ok(Math.abs(mass - 1) < 1e-4, `mass ${mass}`);
    }
    // Causality: the distribution after a prefix does not depend on later tokens.
    const prefix = await model.logProbs(ids.slice(0, 5));
    for (let i = 0; i < 5; i++) assert.ok(Math.abs(prefix[i][ids[i + 1]] - all[i][ids[i + 1]]) < 1e-5);
  });

  test('tokenizer: dummy-prefix space, BPE merges, byte fallback, exact round trip with offsets', () => {
    const ids = model.tokenize('Once upon', true);
    assert.equal(ids[0], BOS);
    assert.deepEqual(ids.slice(1).map((id) => model.decode([id]).text), ['Once', 'upon']);
    const text = 'Lily said: "héllo 日本"\n\tok';
    const encoded = model.tokenize(text, false);
    const { text: decoded, offsets } = model.decode(encoded);
    assert.equal(decoded, text);
    // 日 is not in the 512-token vocabulary: its three UTF-8 bytes are three <0xNN> tokens at the same offset.
    const at = text.indexOf('日');
    assert.equal(offsets.filter((o) => o === at).length, 3);
    assert.deepEqual([...offsets].sort((a, b) => a - b), offsets);
    assert.deepEqual(model.tokenize('', true), [BOS]);
  });

  test('tokenizer: the same tokens as run.c\'s encoder (merge the best-scoring pair until none merges) on code, prose and odd text', () => {
    const bytes = readFileSync(storiesTokenizer);
    const pieces: string[] = [];
    const scores: number[] = [];
    for (let offset = 4, id = 0; id < 512; id++) {
      scores.push(bytes.readFloatLE(offset));
      const length = bytes.readInt32LE(offset + 4);
      pieces.push(bytes.toString('latin1', offset + 8, offset + 8 + length));
      offset += 8 + length;
    }
    const idOf = new Map(pieces.map((p, id) => [p, id] as const).reverse());
    // run.c: dummy prefix, a symbol per code point (else its bytes as <0xNN>, ids 3..258), then merge the best pair.
    const runC = (text: string): number[] => {
      const ids = [...` ${text}`].flatMap((ch) => idOf.get(Buffer.from(ch).toString('latin1')) ?? [...Buffer.from(ch)].map((b) => b + 3));
      for (;;) {
        let best = -1;
        let bestScore = -Infinity;
        for (let i = 0; i + 1 < ids.length; i++) {
          const merged = idOf.get(pieces[ids[i]] + pieces[ids[i + 1]]);
          if (merged !== undefined && scores[merged] > bestScore) [best, bestScore] = [i, scores[merged]];
        }
        if (best < 0) return ids;
        ids.splice(best, 2, idOf.get(pieces[ids[best]] + pieces[ids[best + 1]])!);
      }
    };
    const texts = [
      readFileSync(path.join(repoRoot, 'sidecar', 'lm', 'serve.ts'), 'utf8').slice(0, 3000),
      'Once upon a time, there was a little girl named Lily.  Two  spaces,\ttabs\n\nand lines.   ',
      '日本語 émoji 😀 and  <0x41> text',
    ];
    for (const text of texts) {
      // Twice: the second encoding comes from the word cache.
      assert.deepEqual(model.tokenize(text, false), runC(text));
      assert.deepEqual(model.tokenize(text, false), runC(text));
    }
  });

  test('a sequence longer than the context or a token outside the vocabulary fails alone, not the prompts batched with it', async () => {
    const good = model.tokenize('Once upon a time', true);
    const [tooLong, outside, fine] = await Promise.allSettled([
      model.logProbs(new Array(513).fill(BOS)),
      model.scoreTokens([BOS, 512]),
      model.scoreTokens(good),
    ]);
    assert.match(String(tooLong.status === 'rejected' && tooLong.reason), /exceeds the model's context of 512/);
    assert.match(String(outside.status === 'rejected' && outside.reason), /token id 512 is outside the vocabulary \(0\.\.511\)/);
    assert.equal(fine.status, 'fulfilled');
  });
});

describe('llama2.c checkpoint loader', () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'replug-llama2c-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  test('rejects a file that is not a checkpoint, and one that ends early', () => {
    const junk = path.join(dir, 'junk.bin');
    writeFileSync(junk, Buffer.from('this is not a model at all, not at all'));
    assert.throws(() => loadCheckpoint(junk), /is not a llama2.c checkpoint/);
    const short = path.join(dir, 'short.bin');
    writeFileSync(short, Buffer.from(new Int32Array([8, 16, 1, 2, 2, 10, 4]).buffer));
    assert.throws(() => loadCheckpoint(short), /ends early/);
  });
});
