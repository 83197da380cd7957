import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { makeTinyBert } from '../scripts/make-tiny-bert';
import { buildBertEncoder } from '../sidecar/encoder/graph/bert-graph';
import { loadModelFolder, type BertFolder } from '../sidecar/encoder/model-folder';
import { gpuFacts } from '../sidecar/encoder/cuda-provider';
import { loadEncoder, type RuntimeEncoder } from '../sidecar/encoder/ort-encoder';

const cudaLibsInstalled = existsSync(
  path.join(path.dirname(require.resolve('onnxruntime-node')), '..', 'bin', 'napi-v6', process.platform, process.arch, 'libonnxruntime_providers_cuda.so'),
);
const gpuHere = gpuFacts().nvidiaGpu || gpuFacts().cudaProvider;

const TEXTS = [
  'function add(a, b) { return a + b; }',
  'x',
  'class Parser { parse(line) { return line.split(","); } }',
  'import os\nprint(os.getcwd())',
  'the quick brown fox jumps over the lazy dog '.repeat(3),
];

function dot(a: Float32Array, b: Float32Array): number {
  return a.reduce((s, x, i) => s + x * b[i], 0);
}

function maxAbsDiff(a: Float32Array[], b: Float32Array[]): number {
  assert.equal(a.length, b.length);
  let m = 0;
  a.forEach((v, i) => v.forEach((x, j) => (m = Math.max(m, Math.abs(x - b[i][j])))));
  return m;
}

describe('OrtEncoder', () => {
  let dir: string;
  let tiny: string;
  let encoder: RuntimeEncoder;

  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'replug-enc-'));
    tiny = await makeTinyBert(path.join(dir, 'tiny'), { seed: 3 });
    encoder = await loadEncoder({ model: tiny, batchSize: 2, threads: 1 });
  });
  after(async () => {
    await encoder?.dispose();
    await rm(dir, { recursive: true, force: true });
  });

  test('device auto on a machine without a GPU runs fp32 on the CPU and has nothing to say about CUDA', { skip: gpuHere && 'a GPU or the CUDA provider is here' }, () => {
    assert.equal(encoder.provider, 'cpu');
    assert.equal(encoder.precision, 'fp32');
    assert.equal(encoder.fallbackReason, undefined);
  });

  test('device cuda fails with what is missing and how to install it', { skip: cudaLibsInstalled && 'CUDA provider present' }, async () => {
    await assert.rejects(loadEncoder({ model: tiny, device: 'cuda' }), /--device cuda: .*libonnxruntime_providers_cuda\.so.*ONNXRUNTIME_NODE_INSTALL=cuda12/);
  });

  test('device webgpu without a GPU fails saying why', { skip: gpuFacts().webgpu && 'a GPU with WebGPU is here' }, async () => {
    await assert.rejects(loadEncoder({ model: tiny, device: 'webgpu' }), /--device webgpu: ONNX Runtime's WebGPU provider could not start for .* \((no Vulkan loader|.*adapter).*\); use --device cpu$/);
  });

  test('reports shape, max length and token counts', () => {
    assert.equal(encoder.dim, 32);
    assert.equal(encoder.maxTokens, 64);
    assert.equal(encoder.countTokens('return a + b;'), 5); // return, a, +, b, ;
    assert.equal(encoder.countTokens(''), 0);
  });

  test('batched, length-sorted embedding equals one-at-a-time embedding, in the caller\'s order', async () => {
    const batched = await encoder.embed(TEXTS);
    const single = [];
    for (const t of TEXTS) single.push(...(await encoder.embed([t])));
    assert.ok(maxAbsDiff(batched, single) < 1e-5);
    for (const v of batched) assert.ok(Math.abs(Math.hypot(...v) - 1) < 1e-5);
    assert.notDeepEqual(batched[0], batched[1]);
    assert.deepEqual(await encoder.embed([]), []);
  });

  test('inputs longer than maxTokens are truncated', async () => {
    const long = 'alpha beta gamma delta '.repeat(40);
    assert.ok(encoder.countTokens(long) > encoder.maxTokens);
    const [a, b] = await encoder.embed([long, `${long} and then something completely different`]);
    assert.deepEqual(a, b);
  });

  test('a `bert.`-prefixed checkpoint gives the same vectors', async () => {
    const prefixed = await loadEncoder({ model: await makeTinyBert(path.join(dir, 'prefixed'), { seed: 3, prefixBert: true }) });
    try {
      assert.ok(maxAbsDiff(await prefixed.embed(TEXTS), await encoder.embed(TEXTS)) < 1e-6);
      assert.equal(prefixed.fingerprint === encoder.fingerprint, false, 'different weight file → different fingerprint');
    } finally {
      await prefixed.dispose();
    }
  });

  test('a plain model.onnx with last_hidden_state is pooled and normalised in JS', async () => {
    const onnxDir = path.join(dir, 'onnx');
    await mkdir(path.join(onnxDir, '1_Pooling'), { recursive: true });
    for (const f of ['tokenizer.json', 'tokenizer_config.json', 'sentence_bert_config.json', 'modules.json', '1_Pooling/config.json']) {
      await copyFile(path.join(tiny, f), path.join(onnxDir, f));
    }
    const folder = (await loadModelFolder(tiny)) as BertFolder;
    await writeFile(path.join(onnxDir, 'model.onnx'), buildBertEncoder(folder.config, folder.weights, { pooling: 'mean', output: 'last_hidden_state' }));
    const plain = await loadEncoder({ model: onnxDir, device: 'cpu' });
    const fp32 = await loadEncoder({ model: tiny, device: 'cpu', precision: 'fp32' });
    try {
      assert.equal(plain.dim, 32);
      assert.equal(plain.precision, 'fp32', 'a plain model.onnx runs as exported');
      assert.ok(maxAbsDiff(await plain.embed(TEXTS), await fp32.embed(TEXTS)) < 1e-5);
    } finally {
      await plain.dispose();
      await fp32.dispose();
    }
    await assert.rejects(loadEncoder({ model: onnxDir, device: 'cpu', precision: 'int8' }), /--precision int8 needs a BERT safetensors folder; .*model\.onnx is a plain ONNX model/);
  });

  test('two CPU sessions side by side return the same vectors, in the caller\'s order', async () => {
    const pool = await loadEncoder({ model: tiny, device: 'cpu', threads: 2, workers: 2, batchSize: 1 });
    try {
      const many = Array.from({ length: 24 }, (_, i) => TEXTS[i % TEXTS.length] + ' '.repeat(i) + i);
      assert.ok(maxAbsDiff(await pool.embed(many), await encoder.embed(many)) < 1e-6);
    } finally {
      await pool.dispose();
    }
  });

  test('int8 stays within cosine 0.99 of fp32, and a text gets the same int8 vector whatever its batch', async () => {
    const fp32 = await loadEncoder({ model: tiny, device: 'cpu', precision: 'fp32' });
    try {
      const [full, quantized] = [await fp32.embed(TEXTS), await encoder.embed(TEXTS)];
      full.forEach((v, i) => assert.ok(dot(v, quantized[i]) > 0.99, `text ${i}: cosine ${dot(v, quantized[i])}`));
    } finally {
      await fp32.dispose();
    }
    // Per-token activation scales: neither batch-mates nor padding change a text's vector.
    const alone = await Promise.all(TEXTS.map(async (t) => (await encoder.embed([t]))[0]));
    assert.ok(maxAbsDiff(await encoder.embed(TEXTS), alone) < 1e-6);
  });

  test('fingerprint follows the weights; tokenizerFingerprint only the tokenizer', async () => {
    const same = await loadModelFolder(tiny);
    const other = await loadModelFolder(await makeTinyBert(path.join(dir, 'seed4'), { seed: 4 }));
    assert.equal(same.fingerprint, encoder.fingerprint);
    assert.notEqual(other.fingerprint, encoder.fingerprint);
    assert.equal(other.tokenizerFingerprint, encoder.tokenizerFingerprint);
  });

  test('embed after dispose fails clearly', async () => {
    const e = await loadEncoder({ model: tiny, device: 'cpu' });
    await e.dispose();
    await assert.rejects(e.embed(['x']), /disposed/);
  });
});

describe('model folder validation', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'replug-folder-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  async function withConfig(name: string, edit: (cfg: Record<string, unknown>) => void): Promise<string> {
    const folder = await makeTinyBert(path.join(dir, name));
    const file = path.join(folder, 'config.json');
    const cfg = JSON.parse(await readFile(file, 'utf8'));
    edit(cfg);
    await writeFile(file, JSON.stringify(cfg));
    return folder;
  }

  test('rejects non-BERT architectures by name', async () => {
    const folder = await withConfig('roberta', (c) => (c.model_type = 'roberta'));
    await assert.rejects(loadModelFolder(folder), /config\.json: model_type "roberta" is not supported: only BERT-family/);
  });

  test('rejects weights that disagree with config.json', async () => {
    const folder = await withConfig('deeper', (c) => (c.num_hidden_layers = 3));
    await assert.rejects(loadModelFolder(folder), /weights do not match config\.json: missing encoder\.layer\.2\./);
    const wider = await withConfig('wider', (c) => (c.intermediate_size = 128));
    await assert.rejects(loadModelFolder(wider), /encoder\.layer\.0\.intermediate\.dense\.weight is \[64,32\], config\.json implies \[128,32\]/);
  });

  test('rejects unsupported pooling, reads CLS pooling', async () => {
    const folder = await makeTinyBert(path.join(dir, 'maxpool'));
    await writeFile(path.join(folder, '1_Pooling', 'config.json'), JSON.stringify({ pooling_mode_max_tokens: true }));
    await assert.rejects(loadModelFolder(folder), /pooling pooling_mode_max_tokens is not supported/);
    const cls = await loadModelFolder(await makeTinyBert(path.join(dir, 'cls'), { pooling: 'cls' }));
    assert.equal(cls.pooling, 'cls');
  });

  test('a missing path is named', async () => {
    await assert.rejects(loadEncoder({ model: path.join(dir, 'nope') }), /no such file or folder, and not a hub id/);
  });
});
