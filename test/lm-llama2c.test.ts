import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { loadCheckpoint } from '../sidecar/lm/llama2c/checkpoint';
import { Llama2cModel } from '../sidecar/lm/llama2c/model';
import { BOS } from '../sidecar/lm/llama2c/tokenizer';
import { needsStories, storiesModel, storiesTokenizer } from './fixtures/lm/stories';

function argmax(v: Float32Array): number {
  let best = 0;
  for (let i = 1; i < v.length; i++) if (v[i] > v[best]) best = i;
  return best;
}

describe('llama2.c model (stories260K)', needsStories, () => {
  let model: Llama2cModel;
  before(() => {
    model = Llama2cModel.load(storiesModel, storiesTokenizer);
  });

  test('reads the header: dim 64, 5 layers, 8 heads over 4 kv heads, vocab 512, seq 512', () => {
    assert.deepEqual(model.transformer.config, { dim: 64, hiddenDim: 172, nLayers: 5, nHeads: 8, nKvHeads: 4, vocabSize: 512, seqLen: 512 });
    assert.equal(model.name, 'stories260K');
  });

  test('greedy generation from BOS tells the Lily story', () => {
    const ids = [BOS];
    for (let step = 0; step < 16; step++) {
      const dists = model.logProbs(ids);
      ids.push(argmax(dists[dists.length - 1]));
    }
    assert.match(model.decode(ids).text, /^Once upon a time, there was a little girl named Lily/);
  });

  test('every position is a normalised log-distribution, and prefixes score the same as whole sequences', () => {
    const ids = model.tokenize('Once upon a time, Tom found a shiny stone.', true);
    const all = model.logProbs(ids);
    assert.equal(all.length, ids.length);
    for (const dist of all) {
      const mass = dist.reduce((sum, lp) => sum + Math.exp(lp), 0);
      assert.ok(Math.abs(mass - 1) < 1e-4, `mass ${mass}`);
    }
    // Causality: the distribution after a prefix does not depend on later tokens.
    const prefix = model.logProbs(ids.slice(0, 5));
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

  test('a sequence longer than the context is refused', () => {
    assert.throws(() => model.logProbs(new Array(513).fill(BOS)), /exceeds the model's context of 512/);
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
