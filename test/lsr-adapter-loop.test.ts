import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { makeTinyBert } from '../scripts/make-tiny-bert';
import { buildBertEncoder } from '../sidecar/encoder/graph/bert-graph';
import { loadModelFolder, type BertFolder } from '../sidecar/encoder/model-folder';
import { loadEncoder } from '../sidecar/encoder/ort-encoder';
import { WorkspaceIndex } from '../sidecar/index/workspace-index';
import { LmScorer } from '../sidecar/lm/scorer';
import { LmServer } from '../sidecar/lm/serve';
import { DEFAULT_LSR_SETTINGS, trainLsr } from '../sidecar/lsr/lsr-trainer';
import { DEFAULT_QUERY_SOURCE, loadQueries } from '../sidecar/lsr/query-source';
import { CopyLm } from './fixtures/lm/copy-lm';
import { buildDenseIndex } from './helpers/dense-index';

test('a plain model.onnx encoder gets a trained query adapter that search and eval load like any model', { timeout: 120_000 }, async () => {
  const dir = await mkdtemp(path.join(tmpdir(), 'replug-adapter-'));
  const server = new LmServer(new CopyLm('copy-lm', 16384));
  try {
    // An inference-only encoder: the graph exported as model.onnx beside its tokenizer, no weights to train.
    const tiny = await makeTinyBert(path.join(dir, 'tiny'), { layers: 1, hidden: 32, heads: 4, ffn: 64, vocab: 'real', maxPos: 256, seed: 5, noShift: true });
    const onnxDir = path.join(dir, 'onnx');
    await mkdir(path.join(onnxDir, '1_Pooling'), { recursive: true });
    for (const f of ['tokenizer.json', 'tokenizer_config.json', 'sentence_bert_config.json', 'modules.json', '1_Pooling/config.json']) {
      await copyFile(path.join(tiny, f), path.join(onnxDir, f));
    }
    const folder = (await loadModelFolder(tiny)) as BertFolder;
    await writeFile(path.join(onnxDir, 'model.onnx'), buildBertEncoder(folder.config, folder.weights, { pooling: 'mean' }));

    const base = await loadEncoder({ model: onnxDir });
    const passages = await buildDenseIndex(path.join(dir, 'index'), base, onnxDir);
    const queries = await loadQueries(passages, { ...DEFAULT_QUERY_SOURCE, split: 'train', trainFraction: 1, evalFraction: 0, perFile: 3 });
    const output = path.join(dir, 'tuned');
    const record = await trainLsr({
      indexDir: path.join(dir, 'index'),
      model: onnxDir,
      output,
      scorer: new LmScorer({ baseUrl: await server.listen(0), model: 'copy-lm', continuationTokens: 512 }),
      queries,
      settings: { ...DEFAULT_LSR_SETTINGS, k: 4, batchSize: 4, steps: 8, lr: 1e-2, gamma: 0.05, checkpointEvery: 4 },
    });
    assert.equal(record.step, 8);
    assert.equal(JSON.parse(await readFile(path.join(output, 'adapter.json'), 'utf8')).base, onnxDir);

    // The tuned folder embeds queries as normalize(W·base + b): same width, moved by training, still unit length.
    const tuned = await loadEncoder({ model: output });
    const text = queries[0].context;
    const [q0] = await base.embed([text]);
    const [q1] = await tuned.embed([text]);
    assert.equal(q1.length, q0.length);
    assert.ok(Math.abs(Math.hypot(...q1) - 1) < 1e-5);
    assert.ok(Math.max(...q1.map((v, i) => Math.abs(v - q0[i]))) > 1e-4, 'the adapter learned something');

    // Search takes the adapter as a query tower over the stored (base) vectors.
    const index = await WorkspaceIndex.open(path.join(dir, 'index'), { encoder: base, queryEncoder: tuned, readOnly: true });
    const hits = await index.search(text, { k: 3, mode: 'dense' });
    assert.equal(hits.length, 3);
    await index.close();
    await tuned.dispose();
    await base.dispose();
  } finally {
    await server.close();
    await rm(dir, { recursive: true, force: true });
  }
});
