import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { checkPrecision } from '../scripts/check-precision';
import { makeTinyBert } from '../scripts/make-tiny-bert';

/**
 * The quality bar int8 must meet before it may be chosen over fp32, on real code (this project's corpus and encoder modules):
 * cosine ≥ 0.99 to fp32 for every passage and query, and retrieval nDCG@10 within noise of fp32. A small random BERT
 * stands in for a trained encoder here (README › Encoder precision says what that can and cannot show);
 * `npm run check:precision -- --model DIR` runs the same check on a real one.
 */
describe('int8 encoder quality against fp32', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'replug-precision-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  test('holds cosine and retrieval on real code', async () => {
    const model = await makeTinyBert(path.join(dir, 'model'), { layers: 4, hidden: 64, heads: 4, ffn: 256, vocab: 'real', maxPos: 256, noShift: true, seed: 5 });
    const roots = path.join(__dirname, '..', 'sidecar');
    const r = await checkPrecision({ model, root: roots, maxQueries: 150, threads: 1 });
    assert.ok(r.queries >= 50, `only ${r.queries} queries with gold`);
    assert.ok(r.cosine.min >= 0.99, `min cosine ${r.cosine.min}`);
    assert.ok(r.ndcg.fp32 > 0, 'the stand-in encoder retrieves something, so the comparison means something');
    assert.ok(r.pass, JSON.stringify(r));
  });
});
