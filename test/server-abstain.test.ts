import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeTinyBert } from '../scripts/make-tiny-bert';
import { loadEncoder } from '../sidecar/encoder/ort-encoder';
import { LmServer } from '../sidecar/lm/serve';
import { ABSTAIN_SCORE, writeAbstention } from '../sidecar/retrieve/abstention';
import { CompletionService } from '../sidecar/server/complete-service';
import { IndexService } from '../sidecar/server/index-service';
import { CopyLm } from './fixtures/lm/copy-lm';
import { makeTree } from './helpers/temp-tree';

const FILES = {
  'math.js': 'function sum(a, b) {\n  return a + b;\n}\n\nfunction product(a, b) {\n  return a * b;\n}\n',
  'strings.js': 'function shout(text) {\n  return text.toUpperCase() + "!";\n}\n',
  'todo.js': '// more arithmetic\n\nfunction add(a, b) {\n  return a',
};

test('an encoder trained with abstention hides search results and completes without passages exactly where its score beats the best cosine', { timeout: 120_000 }, async () => {
  const tree = makeTree(FILES);
  const models = mkdtempSync(join(tmpdir(), 'replug-abstain-model-'));
  const lm = new LmServer(new CopyLm('copy-lm', 4096));
  const endpoint = { baseUrl: await lm.listen(0), model: 'copy-lm' };
  const model = await makeTinyBert(join(models, 'tiny'), { layers: 1, hidden: 32, heads: 4, ffn: 64, vocab: 'real', maxPos: 256, seed: 3 });
  const indexDir = join(tree.root, '.index');
  /** A sidecar's index service whose encoder folder holds the empty-passage score τ (undefined: none). */
  const withScore = async <T>(tau: number | undefined, use: (service: IndexService) => Promise<T>): Promise<T> => {
    if (tau !== undefined) await writeAbstention(model, new Map([[ABSTAIN_SCORE, { shape: [1], data: Float32Array.of(tau) }]]));
    else rmSync(join(model, 'abstain.safetensors'), { force: true });
    const service = new IndexService({ indexDir, indexOptions: {}, encoder: { model, load: () => loadEncoder({ model, device: 'cpu' }) }, onStatus: () => undefined });
    try {
      return await use(service);
    } finally {
      await service.close();
    }
  };
  const query = { query: 'function sum returns a + b', k: 2, excludePath: join(tree.root, 'todo.js') };
  try {
    const best = await withScore(undefined, async (service) => {
      await service.index([tree.root]);
      const dense = await service.search({ ...query, mode: 'dense', k: 1 });
      assert.equal(await service.abstains(query), false, 'a model without a score never abstains');
      assert.equal((await service.search({ ...query, abstain: true })).length, 2);
      return dense[0].score;
    });

    // Just above and just below the best cosine of the passages the search may return.
    assert.deepEqual(await withScore(best + 0.01, async (s) => [await s.abstains(query), (await s.search({ ...query, abstain: true })).length, (await s.search(query)).length]), [true, 0, 2]);
    await withScore(best - 0.01, async (s) => {
      assert.equal(await s.abstains(query), false);
      // The search reuses the query embedding the abstention check took: the same hits and scores as without it.
      assert.deepEqual(await s.search({ ...query, abstain: true }), await s.search(query));
      assert.equal((await s.search(query)).length, 2);
    });

    // Completions: where the retriever abstains, the LM completes from the context alone.
    await withScore(2, async (service) => {
      const completions = new CompletionService(service);
      const todo = join(tree.root, 'todo.js');
      const ask = (extra: object) => completions.complete({ lm: endpoint, prompt: FILES['todo.js'], path: todo, promptLines: [1, 4], maxTokens: 2, ...extra }, new AbortController().signal);
      const abstaining = await ask({ abstain: true });
      assert.equal(abstaining.abstained, true);
      assert.deepEqual(abstaining.passages, []);
      assert.equal(abstaining.text, (await ask({ mode: 'none' })).text);
      const retrieving = await ask({});
      assert.equal(retrieving.abstained, false);
      assert.ok(retrieving.passages.length > 0, 'without `abstain` the score is ignored');
    });
  } finally {
    await lm.close();
    tree.cleanup();
    rmSync(models, { recursive: true, force: true });
  }
});
