import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { makeTinyBert } from '../scripts/make-tiny-bert';
import { loadEncoder } from '../sidecar/encoder/ort-encoder';
import { candidateIndexFor } from '../sidecar/eval/evaluate';
import { StoredCandidates } from '../sidecar/lsr/candidate-index';
import { WorkspaceIndex } from '../sidecar/index/workspace-index';
import { LmScorer } from '../sidecar/lm/scorer';
import { LmServer } from '../sidecar/lm/serve';
import { DEFAULT_LSR_SETTINGS, trainLsr, type LsrEvent } from '../sidecar/lsr/lsr-trainer';
import { DEFAULT_QUERY_SOURCE, loadQueries } from '../sidecar/lsr/query-source';
import { ABSTAIN_FILE } from '../sidecar/retrieve/abstention';
import { CopyLm } from './fixtures/lm/copy-lm';
import { buildDenseIndex } from './helpers/dense-index';

test('shared mode re-embeds the documents every refreshEvery steps, and its model searches its own vectors', { timeout: 120_000 }, async () => {
  const dir = await mkdtemp(path.join(tmpdir(), 'replug-shared-'));
  const server = new LmServer(new CopyLm('copy-lm', 16384));
  try {
    const model = await makeTinyBert(path.join(dir, 'tiny'), { layers: 1, hidden: 32, heads: 4, ffn: 64, vocab: 'real', maxPos: 256, seed: 2, noShift: true });
    const base = await loadEncoder({ model });
    const passages = await buildDenseIndex(path.join(dir, 'index'), base, model);
    const events: LsrEvent[] = [];
    const output = path.join(dir, 'tuned');
    const record = await trainLsr({
      indexDir: path.join(dir, 'index'),
      model,
      output,
      scorer: new LmScorer({ baseUrl: await server.listen(0), model: 'copy-lm' }),
      queries: await loadQueries(passages, { ...DEFAULT_QUERY_SOURCE, split: 'train', trainFraction: 1, evalFraction: 0, perFile: 3 }),
      settings: { ...DEFAULT_LSR_SETTINGS, mode: 'shared', k: 4, batchSize: 4, steps: 5, refreshEvery: 2, lr: 1e-3, checkpointEvery: 100 },
      onEvent: (e) => events.push(e),
    });
    assert.equal(record.mode, 'shared');
    assert.equal(record.documentEncoder, undefined);
    const refreshes = events.filter((e) => e.type === 'refresh');
    assert.deepEqual(refreshes.map((e) => e.type === 'refresh' && [e.step, e.passages]), [[2, passages.length], [4, passages.length]]);
    assert.equal(events.filter((e) => e.type === 'step').length, 5);

    // The stored vectors belong to the base encoder: a shared-mode model re-embeds documents to be evaluated.
    const tuned = await loadEncoder({ model: output });
    const index = await WorkspaceIndex.open(path.join(dir, 'index'), { encoder: base, readOnly: true });
    assert.ok(!((await candidateIndexFor({ name: 'tuned', model: output, encoder: tuned }, index)) instanceof StoredCandidates));
    assert.ok((await candidateIndexFor({ name: 'base', model, encoder: base }, index)) instanceof StoredCandidates);
    await index.close();
    await tuned.dispose();
    await base.dispose();
  } finally {
    await server.close();
    await rm(dir, { recursive: true, force: true });
  }
});

test('an interrupted and resumed run ends with the same model as an uninterrupted one, in both modes and with abstention', { timeout: 240_000 }, async () => {
  const dir = await mkdtemp(path.join(tmpdir(), 'replug-exact-resume-'));
  const server = new LmServer(new CopyLm('copy-lm', 16384));
  try {
    const model = await makeTinyBert(path.join(dir, 'tiny'), { layers: 1, hidden: 32, heads: 4, ffn: 64, vocab: 'real', maxPos: 256, seed: 4, noShift: true });
    const base = await loadEncoder({ model });
    const indexDir = path.join(dir, 'index');
    const passages = await buildDenseIndex(indexDir, base, model);
    await base.dispose();
    const url = await server.listen(0);
    const queries = await loadQueries(passages, { ...DEFAULT_QUERY_SOURCE, split: 'train', trainFraction: 1, evalFraction: 0, perFile: 3 });
    for (const [mode, abstain] of [['query-tower', false], ['shared', false], ['query-tower', true]] as const) {
      const name = `${mode}${abstain ? '-abstain' : ''}`;
      const settings = { ...DEFAULT_LSR_SETTINGS, mode, abstain, k: 4, batchSize: 4, steps: 6, refreshEvery: 2, lr: 1e-3, checkpointEvery: 100 };
      const train = (output: string, extra: Partial<Parameters<typeof trainLsr>[0]> = {}) =>
        trainLsr({ indexDir, model, output, scorer: new LmScorer({ baseUrl: url, model: 'copy-lm' }), queries, settings, ...extra });
      await train(path.join(dir, `${name}-whole`));
      const abort = new AbortController();
      const stopped = await train(path.join(dir, `${name}-split`), { signal: abort.signal, onEvent: (e) => e.type === 'step' && e.step === 3 && abort.abort() });
      assert.equal(stopped.step, 3);
      await train(path.join(dir, `${name}-split`), { resume: true });
      const files = abstain ? ['model.safetensors', ABSTAIN_FILE] : ['model.safetensors'];
      for (const file of files) {
        const bytes = (run: string) => readFileSync(path.join(dir, run, file));
        assert.ok(bytes(`${name}-whole`).equals(bytes(`${name}-split`)), `${name}: the resumed run's ${file} differs from the uninterrupted one's`);
      }
      assert.equal(existsSync(path.join(dir, `${name}-whole`, ABSTAIN_FILE)), abstain);
    }
  } finally {
    await server.close();
    await rm(dir, { recursive: true, force: true });
  }
});

test('training refuses to start from an encoder other than the one the index was built with', async () => {
  const dir = await mkdtemp(path.join(tmpdir(), 'replug-mismatch-'));
  try {
    const shape = { layers: 1, hidden: 32, heads: 4, ffn: 64, vocab: 'real', maxPos: 128 } as const;
    const indexed = await makeTinyBert(path.join(dir, 'a'), { ...shape, seed: 1 });
    const other = await makeTinyBert(path.join(dir, 'b'), { ...shape, seed: 2 });
    const encoder = await loadEncoder({ model: indexed });
    const passages = await buildDenseIndex(path.join(dir, 'index'), encoder, indexed);
    await encoder.dispose();
    await assert.rejects(
      trainLsr({
        indexDir: path.join(dir, 'index'),
        model: other,
        output: path.join(dir, 'out'),
        scorer: new LmScorer({ baseUrl: 'http://127.0.0.1:9/v1', model: 'unused' }),
        queries: await loadQueries(passages, { ...DEFAULT_QUERY_SOURCE, split: 'train', trainFraction: 1, evalFraction: 0 }),
        settings: DEFAULT_LSR_SETTINGS,
      }),
      /the index's vectors come from .*\/a, not .*\/b: train from that encoder, or first re-index with --model/,
    );
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
