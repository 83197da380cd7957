import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import type { BertConfig, Pooling } from './bert-config';
import { ModelFormatError } from './model-format-error';
import { parseSafetensors, toFloat32, type Float32Tensor } from './safetensors';
import { bertTokenizerJson } from './wordpiece-config';

/**
 * Loads a sentence-encoder from a Hugging Face / sentence-transformers folder: a BERT-family checkpoint
 * (config.json + model.safetensors) that we turn into an ONNX graph, or a ready `model.onnx` (inference only).
 */

export interface TokenizerFiles {
  json: Record<string, unknown>;
  config: Record<string, unknown>;
}

interface FolderCommon {
  dir: string;
  tokenizer: TokenizerFiles;
  pooling: Pooling;
  /** Longest input in tokens, special tokens included. */
  maxTokens: number;
  /** sha256 over everything that changes the vectors (weights, config, pooling, max length, tokenizer). */
  fingerprint: string;
  /** sha256 of the tokenizer files alone (token counts, hence chunk boundaries, depend only on them). */
  tokenizerFingerprint: string;
}

export interface BertFolder extends FolderCommon {
  kind: 'bert';
  config: BertConfig;
  /** Float32 weights by canonical name: no `bert.` prefix, LayerNorm `gamma`/`beta` renamed `weight`/`bias`. */
  weights: Map<string, Float32Tensor>;
}

export interface OnnxFolder extends FolderCommon {
  kind: 'onnx';
  onnxPath: string;
}

export type ModelFolder = BertFolder | OnnxFolder;

/** `location` is a model folder, or a `.onnx` file whose folder holds the tokenizer files. */
export async function loadModelFolder(location: string): Promise<ModelFolder> {
  const isOnnxFile = location.endsWith('.onnx');
  const dir = isOnnxFile ? path.dirname(location) : location;
  if (!existsSync(location)) throw new ModelFormatError(location, 'does not exist');
  await assertNotUnfinishedRun(dir);
  const file = (name: string) => path.join(dir, name);
  const tokenizerConfig = (await readJsonIfExists(file('tokenizer_config.json'))) ?? {};
  const tokenizer = { json: await loadTokenizerJson(dir, tokenizerConfig), config: tokenizerConfig };
  const pooling = await readPooling(dir);
  const tokenizerFingerprint = createHash('sha256').update(JSON.stringify(tokenizer)).digest('hex');
  const hash = createHash('sha256').update(`${tokenizerFingerprint}|${pooling}`);

  const onnxPath = isOnnxFile ? location : [file('model.onnx'), file('onnx/model.onnx')].find(existsSync);
  if (isOnnxFile || (onnxPath && !existsSync(file('model.safetensors')))) {
    const bytes = await readFile(onnxPath!);
    const maxTokens = await readMaxTokens(dir, tokenizerConfig, Infinity);
    if (!Number.isFinite(maxTokens)) {
      throw new ModelFormatError(dir, 'no max length found: add sentence_bert_config.json with "max_seq_length"');
    }
    hash.update(bytes).update(`max:${maxTokens}`);
    return { kind: 'onnx', dir, onnxPath: onnxPath!, tokenizer, pooling, maxTokens, fingerprint: hash.digest('hex'), tokenizerFingerprint };
  }

  const rawConfig = await readJsonIfExists(file('config.json'));
  if (!rawConfig) throw new ModelFormatError(dir, 'no config.json: this is not a Hugging Face model folder');
  const config = parseBertConfig(rawConfig, file('config.json'));
  const weightsPath = file('model.safetensors');
  if (!existsSync(weightsPath)) {
    throw new ModelFormatError(dir, 'no model.safetensors (pytorch_model.bin is not supported: convert it to safetensors)');
  }
  const weightBytes = await readFile(weightsPath);
  const weights = canonicalWeights(weightBytes, weightsPath);
  checkWeights(weights, config, weightsPath);
  const maxTokens = await readMaxTokens(dir, tokenizerConfig, config.maxPositions);
  hash.update(weightBytes).update(JSON.stringify(config)).update(`max:${maxTokens}`);
  return { kind: 'bert', dir, config, weights, tokenizer, pooling, maxTokens, fingerprint: hash.digest('hex'), tokenizerFingerprint };
}

/**
 * A training output whose run was interrupted holds checkpoints but no model yet: say so, and how to finish it,
 * rather than reporting missing tokenizer files.
 */
async function assertNotUnfinishedRun(dir: string): Promise<void> {
  const current = path.join(dir, 'checkpoints', 'CURRENT');
  if (!existsSync(current) || existsSync(path.join(dir, 'config.json')) || existsSync(path.join(dir, 'model.onnx'))) return;
  const generation = (await readFile(current, 'utf8')).trim();
  const state = await readJsonIfExists(path.join(dir, 'checkpoints', generation, 'trainer-state.json')).catch(() => undefined);
  const step = typeof state?.step === 'number' ? ` (its last checkpoint is at step ${state.step})` : '';
  throw new ModelFormatError(dir, `holds a training run that did not finish${step}, not a model: finish it with \`replug-code train --resume --output ${dir}\``);
}

async function readJsonIfExists(file: string): Promise<Record<string, unknown> | undefined> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  try {
    return JSON.parse(text) as Record<string, unknown>;
  } catch (err) {
    throw new ModelFormatError(file, `is not valid JSON: ${(err as Error).message}`);
  }
}

async function loadTokenizerJson(dir: string, tokenizerConfig: Record<string, unknown>): Promise<Record<string, unknown>> {
  const json = await readJsonIfExists(path.join(dir, 'tokenizer.json'));
  if (json) return json;
  const vocabPath = path.join(dir, 'vocab.txt');
  if (!existsSync(vocabPath)) throw new ModelFormatError(dir, 'no tokenizer.json or vocab.txt');
  const vocab = (await readFile(vocabPath, 'utf8')).split(/\r?\n/);
  if (vocab.at(-1) === '') vocab.pop();
  return bertTokenizerJson(vocab, tokenizerConfig.do_lower_case !== false);
}

/** Pooling from sentence-transformers' modules.json → Pooling module config; mean when the folder has none. */
async function readPooling(dir: string): Promise<Pooling> {
  const modules = (await readJsonIfExists(path.join(dir, 'modules.json'))) as unknown as Array<Record<string, string>> | undefined;
  const poolingModule = modules?.find((m) => m.type?.endsWith('.Pooling'));
  if (!poolingModule) return 'mean';
  const configPath = path.join(dir, poolingModule.path, 'config.json');
  const cfg = await readJsonIfExists(configPath);
  if (!cfg) throw new ModelFormatError(configPath, 'missing (modules.json names a Pooling module)');
  const modes = Object.entries(cfg).filter(([k, v]) => k.startsWith('pooling_mode_') && v === true).map(([k]) => k);
  if (modes.length === 1 && modes[0] === 'pooling_mode_mean_tokens') return 'mean';
  if (modes.length === 1 && modes[0] === 'pooling_mode_cls_token') return 'cls';
  throw new ModelFormatError(configPath, `pooling ${modes.join('+') || '(none)'} is not supported; use mean or CLS pooling`);
}

async function readMaxTokens(dir: string, tokenizerConfig: Record<string, unknown>, maxPositions: number): Promise<number> {
  const st = await readJsonIfExists(path.join(dir, 'sentence_bert_config.json'));
  const candidates = [st?.max_seq_length, tokenizerConfig.model_max_length, maxPositions];
  // transformers writes model_max_length = 1e30 when unknown; positive integers below the position table only.
  const max = candidates.find((v): v is number => typeof v === 'number' && Number.isInteger(v) && v > 2 && v <= maxPositions);
  return Math.min(max ?? maxPositions, maxPositions);
}

function parseBertConfig(raw: Record<string, unknown>, file: string): BertConfig {
  if (raw.model_type !== 'bert') {
    throw new ModelFormatError(file, `model_type "${String(raw.model_type)}" is not supported: only BERT-family encoders (model_type "bert") can be loaded from safetensors; export other models to model.onnx`);
  }
  if (raw.hidden_act !== undefined && raw.hidden_act !== 'gelu') {
    throw new ModelFormatError(file, `hidden_act "${String(raw.hidden_act)}" is not supported (only exact "gelu")`);
  }
  if (raw.position_embedding_type !== undefined && raw.position_embedding_type !== 'absolute') {
    throw new ModelFormatError(file, `position_embedding_type "${String(raw.position_embedding_type)}" is not supported (only "absolute")`);
  }
  const int = (key: string, fallback?: number): number => {
    const v = raw[key] ?? fallback;
    if (typeof v !== 'number' || !Number.isInteger(v) || v <= 0) throw new ModelFormatError(file, `"${key}" must be a positive integer, got ${JSON.stringify(v)}`);
    return v;
  };
  const cfg: BertConfig = {
    vocabSize: int('vocab_size'),
    hiddenSize: int('hidden_size'),
    numLayers: int('num_hidden_layers'),
    numHeads: int('num_attention_heads'),
    intermediateSize: int('intermediate_size'),
    maxPositions: int('max_position_embeddings'),
    typeVocabSize: int('type_vocab_size', 2),
    layerNormEps: typeof raw.layer_norm_eps === 'number' ? raw.layer_norm_eps : 1e-12,
  };
  if (cfg.hiddenSize % cfg.numHeads !== 0) throw new ModelFormatError(file, `hidden_size ${cfg.hiddenSize} is not a multiple of num_attention_heads ${cfg.numHeads}`);
  return cfg;
}

/** Float weights under canonical names; integer buffers such as `embeddings.position_ids` are skipped. */
function canonicalWeights(bytes: Uint8Array, file: string): Map<string, Float32Tensor> {
  const weights = new Map<string, Float32Tensor>();
  for (const [name, t] of parseSafetensors(bytes, file).tensors) {
    if (!['F32', 'F16', 'BF16'].includes(t.dtype)) continue;
    const canonical = name.replace(/^bert\./, '').replace(/LayerNorm\.gamma$/, 'LayerNorm.weight').replace(/LayerNorm\.beta$/, 'LayerNorm.bias');
    weights.set(canonical, { shape: t.shape, data: toFloat32(t, file, name) });
  }
  return weights;
}

/** Every weight the graph reads, with the shape the config implies. */
export function expectedWeightShapes(cfg: BertConfig): Map<string, number[]> {
  const h = cfg.hiddenSize;
  const shapes = new Map<string, number[]>([
    ['embeddings.word_embeddings.weight', [cfg.vocabSize, h]],
    ['embeddings.position_embeddings.weight', [cfg.maxPositions, h]],
    ['embeddings.token_type_embeddings.weight', [cfg.typeVocabSize, h]],
  ]);
  const linear = (name: string, out: number, inp: number) => {
    shapes.set(`${name}.weight`, [out, inp]);
    shapes.set(`${name}.bias`, [out]);
  };
  const norm = (name: string) => {
    shapes.set(`${name}.weight`, [h]);
    shapes.set(`${name}.bias`, [h]);
  };
  norm('embeddings.LayerNorm');
  for (let l = 0; l < cfg.numLayers; l++) {
    const p = `encoder.layer.${l}`;
    for (const m of ['query', 'key', 'value']) linear(`${p}.attention.self.${m}`, h, h);
    linear(`${p}.attention.output.dense`, h, h);
    norm(`${p}.attention.output.LayerNorm`);
    linear(`${p}.intermediate.dense`, cfg.intermediateSize, h);
    linear(`${p}.output.dense`, h, cfg.intermediateSize);
    norm(`${p}.output.LayerNorm`);
  }
  return shapes;
}

function checkWeights(weights: Map<string, Float32Tensor>, cfg: BertConfig, file: string): void {
  const problems: string[] = [];
  for (const [name, shape] of expectedWeightShapes(cfg)) {
    const t = weights.get(name);
    if (!t) problems.push(`missing ${name}`);
    else if (t.shape.join(',') !== shape.join(',')) problems.push(`${name} is [${t.shape}], config.json implies [${shape}]`);
  }
  if (problems.length) {
    const shown = problems.slice(0, 5).join('; ') + (problems.length > 5 ? `; … ${problems.length - 5} more` : '');
    throw new ModelFormatError(file, `weights do not match config.json: ${shown}`);
  }
}

