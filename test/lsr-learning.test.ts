import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { makeTinyBert } from '../scripts/make-tiny-bert';
import { loadEncoder } from '../sidecar/encoder/ort-encoder';
import { evaluateRetrievers } from '../sidecar/eval/evaluate';
import { WorkspaceIndex } from '../sidecar/index/workspace-index';
import { LmScorer } from '../sidecar/lm/scorer';
import { LmServer } from '../sidecar/lm/serve';
import { DEFAULT_LSR_SETTINGS, trainLsr } from '../sidecar/lsr/lsr-trainer';
import { DEFAULT_QUERY_SOURCE, loadQueries } from '../sidecar/lsr/query-source';
import { CopyLm } from './fixtures/lm/copy-lm';
import { buildDenseIndex } from './helpers/dense-index';

/** A small real code corpus: execa's sources (pinned by package-lock.json), 105 JavaScript files. */
const CORPUS = path.resolve(__dirname, '..', 'node_modules', 'execa', 'lib');

test(
  'LSR against a teacher with known preferences lowers the loss and raises held-out nDCG@k',
  { timeout: 600_000, skip: !existsSync(CORPUS) && `${CORPUS} is missing: run npm ci` },
  async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'replug-lsr-learning-'));
    // The copy-LM gives y a higher likelihood after a passage that contains y's tokens in order.
    const server = new LmServer(new CopyLm('copy-lm', 16384));
    try {
      const model = await makeTinyBert(path.join(dir, 'tiny'), { layers: 2, hidden: 64, heads: 4, ffn: 128, vocab: 'real', maxPos: 256, seed: 1, noShift: true });
      const base = await loadEncoder({ model });
      await buildDenseIndex(path.join(dir, 'index'), base, model, [CORPUS]);
      const scorer = new LmScorer({ baseUrl: await server.listen(0), model: 'copy-lm', continuationTokens: 512 });
      const index = await WorkspaceIndex.open(path.join(dir, 'index'), { encoder: base, readOnly: true });
      const source = { ...DEFAULT_QUERY_SOURCE, perFile: 10 };
      const train = await loadQueries(index.passages(), { ...source, split: 'train' });
      // Held-out queries: other points of the training files whose continuations overlap no training continuation
      // (the retriever is used on the workspace it was trained on, at places it never saw).
      const heldOut = (await loadQueries(index.passages(), { ...source, split: 'eval-points' })).slice(0, 80);
      assert.ok(heldOut.length >= 20, `enough held-out queries (${heldOut.length})`);
      for (const q of heldOut) {
        assert.ok(!train.some((t) => t.path === q.path && t.continuationStart <= q.continuationEnd && q.continuationStart <= t.continuationEnd));
      }

      const losses: number[] = [];
      const output = path.join(dir, 'tuned');
      await trainLsr({
        indexDir: path.join(dir, 'index'),
        model,
        output,
        scorer,
        queries: train,
        settings: { ...DEFAULT_LSR_SETTINGS, gamma: 0.05, lr: 3e-3, steps: 200, batchSize: 8, k: 8, checkpointEvery: 1000 },
        onEvent: (e) => {
          if (e.type === 'step') losses.push(e.loss);
        },
      });
      const tuned = await loadEncoder({ model: output });
      const report = await evaluateRetrievers({
        index,
        retrievers: [{ name: 'base', model, encoder: base }, { name: 'tuned', model: output, encoder: tuned }],
        scorer,
        queries: heldOut,
        k: 8,
        ensembleK: 8,
        gamma: 0.05,
      });
      await index.close();
      await base.dispose();
      await tuned.dispose();

      const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
      const first = mean(losses.slice(0, 10));
      const last = mean(losses.slice(-10));
      const [b, t] = report.retrievers;
      console.log(`loss ${first.toFixed(3)} → ${last.toFixed(3)}; nDCG@8 ${b.teacher.ndcg.toFixed(3)} → ${t.teacher.ndcg.toFixed(3)}; MRR ${b.teacher.mrr.toFixed(3)} → ${t.teacher.mrr.toFixed(3)}; bits/byte ${b.bitsPerByte.toFixed(3)} → ${t.bitsPerByte.toFixed(3)} (no retrieval ${report.noRetrievalBitsPerByte.toFixed(3)})`);
      assert.ok(last < first - 0.1, `training loss fell from ${first.toFixed(3)} to ${last.toFixed(3)}`);
      // Measured here (deterministic): nDCG@8 0.054 → 0.113, loss 1.997 → 1.719, ensemble bits/byte 1.923 → 1.904.
      // Across batch-order seeds 0-2 the nDCG gain varied by under 0.01. Bits per byte moved by under 0.02 either way
      // in other configurations, so it is reported, not asserted.
      assert.ok(t.teacher.ndcg > b.teacher.ndcg + 0.03, `held-out nDCG@8 rose from ${b.teacher.ndcg.toFixed(3)} to ${t.teacher.ndcg.toFixed(3)}`);
      assert.ok(t.teacher.mrr > b.teacher.mrr, `held-out MRR rose from ${b.teacher.mrr.toFixed(3)} to ${t.teacher.mrr.toFixed(3)}`);
    } finally {
      await server.close();
      rmSync(dir, { recursive: true, force: true });
    }
  },
);
