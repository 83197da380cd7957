import type { BertConfig, Pooling } from '../bert-config';
import type { Float32Tensor } from '../safetensors';
import { attentionBias, clsPool, embeddings, encoderLayer, l2Normalize, meanPool } from './bert-layers';
import { GraphBuilder } from './graph-builder';
import type { Precision } from '../precision';
import { ALL_FUSIONS, inferenceEncoderLayer, NO_FUSIONS, type Fusions } from './inference-layers';
import type { QuantizedInputs } from './quantized-linear';

export type { Fusions } from './inference-layers';

export interface BertGraphOptions {
  pooling: Pooling;
  /**
   * 'sentence_embedding': pooled and L2-normalised [batch, hidden] (what the encoder runs);
   * 'last_hidden_state': the final hidden states [batch, seq, hidden] (the layout other runtimes expect).
   */
  output?: 'sentence_embedding' | 'last_hidden_state';
  /** Feeds weights as inputs: the plain fp32 layers a training graph shares (no fusions, no quantisation). */
  weightsAsInputs?: boolean;
  /** Default fp32. int8: dynamically quantised linear layers (CPU); fp16: float16 throughout (GPU). */
  precision?: Precision;
  /**
   * ORT contrib-op fusions (see inference-layers.ts); false: the plain layers of bert-layers.ts, which training shares.
   * Default: what measured fastest for the precision's provider: plain for fp32, no fusions for int8 (CPU), all
   * for fp16 (CUDA).
   */
  fusions?: Fusions | false;
}

/** Builds the BERT sentence-encoder graph. Inputs: input_ids, attention_mask (int64 [batch, seq]). */
export function buildBertEncoder(cfg: BertConfig, weights: ReadonlyMap<string, Float32Tensor>, opts: BertGraphOptions): Uint8Array {
  const precision = opts.precision ?? 'fp32';
  if (opts.weightsAsInputs && (precision !== 'fp32' || opts.fusions)) throw new Error('a graph with weights as inputs has the plain fp32 layers only');
  const fusions = opts.fusions ?? (precision === 'fp16' ? ALL_FUSIONS : precision === 'int8' ? NO_FUSIONS : false);
  if (precision === 'int8' && !fusions) throw new Error('the int8 graph is built from the inference layers: pass fusions, not false');
  const g = new GraphBuilder({ weights, weightsAsInputs: opts.weightsAsInputs, float16: precision === 'fp16' });
  const ids = g.input('input_ids', 'int64', ['batch', 'seq']);
  const mask = g.input('attention_mask', 'int64', ['batch', 'seq']);
  const maskFloat = g.op('Cast', [mask], { to: g.floatTypeCode });
  // MultiHeadAttention takes the 1/0 mask itself; the plain attention adds a bias.
  const mha = fusions && fusions.multiHeadAttention;
  const bias = mha ? '' : attentionBias(g, maskFloat);
  let h = embeddings(g, ids, cfg);
  if (fusions) {
    const keyMask = mha ? g.op('Cast', [mask], { to: 6 /* INT32 */ }) : '';
    const quantized: QuantizedInputs = new Map();
    for (let i = 0; i < cfg.numLayers; i++) h = inferenceEncoderLayer(g, h, i, { cfg, weights, precision, fusions, keyMask, bias, quantized });
  } else {
    for (let i = 0; i < cfg.numLayers; i++) h = encoderLayer(g, h, bias, i, cfg);
  }
  // Pooling and the output stay float32 whatever the precision inside (callers read Float32Array).
  if (opts.output === 'last_hidden_state') {
    g.output(toFloat32(g, h), 'last_hidden_state', 'float', ['batch', 'seq', cfg.hiddenSize]);
  } else {
    const pooled = opts.pooling === 'cls' ? clsPool(g, h) : meanPool(g, h, maskFloat);
    g.output(toFloat32(g, l2Normalize(g, pooled)), 'sentence_embedding', 'float', ['batch', cfg.hiddenSize]);
  }
  return g.toBytes('bert_encoder');
}

function toFloat32(g: GraphBuilder, x: string): string {
  return g.floatType === 'float' ? x : g.op('Cast', [x], { to: 1 /* FLOAT */ });
}
