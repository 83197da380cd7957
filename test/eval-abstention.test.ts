import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { makeTinyBert } from '../scripts/make-tiny-bert';
import { loadEncoder } from '../sidecar/encoder/ort-encoder';
import { abstentionLines } from '../sidecar/eval/abstention-text';
import { evaluateRetrievers, lsrLoss, type EvalReport, type QueryOutcome } from '../sidecar/eval/evaluate';
import { WorkspaceIndex } from '../sidecar/index/workspace-index';
import { LmScorer } from '../sidecar/lm/scorer';
import { LmServer } from '../sidecar/lm/serve';
import { ownSource } from '../sidecar/lsr/lsr-trainer';
import { DEFAULT_QUERY_SOURCE, loadQueries } from '../sidecar/lsr/query-source';
import { ABSTAIN_SCORE, AbstentionHead, writeAbstention } from '../sidecar/retrieve/abstention';
import { CopyLm } from './fixtures/lm/copy-lm';
import { buildDenseIndex } from './helpers/dense-index';

test('the held-out loss is KL(Q ‖ P_R) over the same candidates, by hand', () => {
  // Q = softmax([0, ln 3]/1) = (1/4, 3/4); P_R = softmax([0, 0]) = (1/2, 1/2).
  const expected = 0.25 * Math.log(0.25 / 0.5) + 0.75 * Math.log(0.75 / 0.5);
  assert.ok(Math.abs(lsrLoss([-5, -5 + Math.log(3)], [0.3, 0.3], 1, 0.1) - expected) < 1e-12);
  // β and γ scale the log-probs and the cosines: Q = softmax([0, 2·ln 3]/2), P_R = softmax([0.1, 0.1]/0.1).
  assert.ok(Math.abs(lsrLoss([0, 2 * Math.log(3)], [0.1, 0.1], 2, 0.1) - expected) < 1e-12);
  assert.equal(lsrLoss([-1, -2], [0.5, 0.2], 0.1, 0.1) > 0, true);
});

test('eval reports how often a retriever with an empty-passage score abstains, and the ensemble and loss with ∅ in them', { timeout: 180_000 }, async (t) => {
  const dir = await mkdtemp(path.join(tmpdir(), 'replug-eval-abstain-'));
  const server = new LmServer(new CopyLm('copy-lm', 16384));
  try {
    const model = await makeTinyBert(path.join(dir, 'tiny'), { layers: 1, hidden: 32, heads: 4, ffn: 64, vocab: 'real', maxPos: 256, seed: 6, noShift: true });
    const encoder = await loadEncoder({ model });
    const passages = await buildDenseIndex(path.join(dir, 'index'), encoder, model);
    const index = await WorkspaceIndex.open(path.join(dir, 'index'), { encoder, readOnly: true });
    const queries = (await loadQueries(passages, { ...DEFAULT_QUERY_SOURCE, split: 'train', trainFraction: 1, evalFraction: 0, perFile: 2 })).slice(0, 24);
    // Each query's best cosine, as the retriever sees it: the empty passage outranks it when τ is above it.
    const best: number[] = [];
    for (const q of queries) best.push(index.searchVector((await encoder.embed([q.context]))[0], 1, ownSource(q))[0].similarity);
    const median = [...best].sort((a, b) => a - b)[Math.floor(best.length / 2)];
    const head = async (name: string, tau: number) => {
      await mkdir(path.join(dir, name));
      await writeAbstention(path.join(dir, name), new Map([[ABSTAIN_SCORE, { shape: [1], data: Float32Array.of(tau) }]]));
      return { name, model, encoder, abstention: await AbstentionHead.load(path.join(dir, name)) };
    };
    const outcomes: QueryOutcome[] = [];
    const report = await evaluateRetrievers({
      index,
      retrievers: [{ name: 'base', model, encoder }, await head('never', -2), await head('median', median), await head('always', 2)],
      scorer: new LmScorer({ baseUrl: await server.listen(0), model: 'copy-lm' }),
      queries,
      k: 5,
      ensembleK: 5,
      gamma: 0.1,
      onQuery: (o) => outcomes.push(o),
    });
    await index.close();
    await encoder.dispose();

    const [base, never, middle, always] = report.retrievers;
    assert.equal(base.abstention, undefined, 'a model without a score reports no abstention');
    assert.deepEqual([never, middle, always].map((r) => r.abstention!.rate), [0, outcomes.filter((_, i) => median > best[i]).length / queries.length, 1]);
    outcomes.forEach((o, i) => assert.equal(o.retrievers[2].abstention!.abstained, median > best[i], `query ${i}: τ ${median}, best cosine ${best[i]}`));
    // The same encoder ranks alike: only the terms with ∅ differ.
    assert.equal(never.bitsPerByte, base.bitsPerByte);
    assert.equal(never.loss, base.loss);
    assert.ok(Math.abs(never.abstention!.bitsPerByte - base.bitsPerByte) < 1e-9 && never.abstention!.weight < 1e-9);
    assert.ok(always.abstention!.weight > 0.99, `P_R(∅) at τ = 2: ${always.abstention!.weight}`);
    // Where ∅ takes the weight, the ensemble tends to the LM alone, and so does its likelihood: bits/byte between the two.
    const [withNone, without] = [always.abstention!.bitsPerByte, base.bitsPerByte];
    assert.ok(Math.abs(withNone - report.noRetrievalBitsPerByte) < Math.abs(without - report.noRetrievalBitsPerByte), `${withNone} vs ${without} (no retrieval ${report.noRetrievalBitsPerByte})`);

    const nothing = outcomes.filter((o) => !o.retrievalHelps);
    assert.equal(report.nothingHelps, nothing.length);
    t.diagnostic(`${nothing.length} of ${outcomes.length} queries where no passage helps; τ = ${median.toFixed(3)} abstains on ${middle.abstention!.rate}`);
    const rateOn = (of: QueryOutcome[]) => (of.length ? of.filter((o) => o.retrievers[2].abstention!.abstained).length / of.length : undefined);
    assert.equal(middle.abstention!.rateWhereNothingHelps, rateOn(nothing));
    assert.equal(middle.abstention!.rateWhereRetrievalHelps, rateOn(outcomes.filter((o) => o.retrievalHelps)));
    for (const o of outcomes) assert.equal(o.bytes, Buffer.byteLength(o.query.continuation));
  } finally {
    await server.close();
    await rm(dir, { recursive: true, force: true });
  }
});

test('the report says how often each abstaining retriever abstains, where retrieval helps and where it does not', () => {
  const teacher = { ndcg: 0, recall: 0, mrr: 0 };
  const report: EvalReport = {
    queries: 50,
    k: 10,
    noRetrievalBitsPerByte: 2.2,
    nothingHelps: 10,
    retrievers: [
      { name: 'base', teacher, bitsPerByte: 2.1, loss: 2.3 },
      {
        name: 'tuned',
        teacher,
        bitsPerByte: 2.05,
        loss: 2.1,
        abstention: { rate: 0.24, rateWhereNothingHelps: 0.6, rateWhereRetrievalHelps: 0.15, weight: 0.1234, bitsPerByte: 2.01, loss: 2.2 },
      },
    ],
  };
  assert.deepEqual(abstentionLines(report), [
    'tuned abstains on 24% of 50 queries: 60% of the 10 where no passage helps the LM, 15% of the 40 where one does',
    'tuned with ∅ in the ensemble: bits/byte 2.010 (without 2.050), mean P_R(∅) 0.123, held-out loss 2.200 (passages only 2.100)',
  ]);
});
