import type { BertConfig } from '../bert-config';
import type { Precision } from '../precision';
import type { Float32Tensor } from '../safetensors';
import { gelu, layerNorm } from './bert-layers';
import type { GraphBuilder } from './graph-builder';
import { int8MatMul, type QuantizedInputs } from './quantized-linear';

/**
 * Which ONNX Runtime contrib ops replace plain ops in the layer. Measured one by one on the CPU (int8, MiniLM shape,
 * batch 32 × 128, CPU ms per sequence on a shared 2-core machine; `npm run bench:encode -- --fusions` repeats it):
 * SkipLayerNormalization 13.1 vs 9.9 without (slower: ORT's CPU kernel loses to LayerNormalization plus the adds),
 * MultiHeadAttention 9.9 vs 9.9 (no gain), BiasGelu the same as ORT's own fusion of the plain ops. So the CPU
 * graphs use none of them; the fp16 graph for CUDA uses all three, as ORT's transformer optimizer does for GPUs
 * (their fused CUDA kernels; `npm run bench:gpu` measures them against the plain ops on a GPU).
 */
export interface Fusions {
  /** com.microsoft.SkipLayerNormalization: residual add + bias + LayerNorm in one op. */
  skipLayerNorm: boolean;
  /** com.microsoft.BiasGelu after the intermediate projection. */
  biasGelu: boolean;
  /** com.microsoft.MultiHeadAttention on one fused QKV projection, instead of MatMul/Softmax/MatMul per head. */
  multiHeadAttention: boolean;
}

export const NO_FUSIONS: Fusions = { skipLayerNorm: false, biasGelu: false, multiHeadAttention: false };
export const ALL_FUSIONS: Fusions = { skipLayerNorm: true, biasGelu: true, multiHeadAttention: true };

export interface InferenceLayerContext {
  cfg: BertConfig;
  weights: ReadonlyMap<string, Float32Tensor>;
  precision: Precision;
  fusions: Fusions;
  /** int32 [batch, seq] 1/0 key padding mask (MultiHeadAttention's input). */
  keyMask: string;
  /** Additive [batch, 1, 1, seq] bias for the plain-op attention. */
  bias: string;
  /** Per-graph cache of int8-quantised inputs. */
  quantized: QuantizedInputs;
}

/**
 * Inference-only encoder layer: the function of bert-layers.ts's encoderLayer, rebuilt for speed with int8 linear
 * layers and/or ORT's fused ops. Training graphs never use it; tests hold it to the same reference forward pass.
 */
export function inferenceEncoderLayer(g: GraphBuilder, x: string, layer: number, c: InferenceLayerContext): string {
  const p = `encoder.layer.${layer}`;
  const attn = selfAttention(g, x, `${p}.attention.self`, c);
  const h = residualNorm(g, projection(g, attn, `${p}.attention.output.dense`, c), x, `${p}.attention.output`, c);
  const inter = projection(g, h, `${p}.intermediate.dense`, c);
  const act = c.fusions.biasGelu ? g.msOp('BiasGelu', [inter.out, inter.bias]) : gelu(g, g.op('Add', [inter.out, inter.bias]));
  return residualNorm(g, projection(g, act, `${p}.output.dense`, c), h, `${p}.output`, c);
}

/** A linear layer's product without its bias (the consumer folds the bias into a fused op or adds it). */
interface Projection {
  out: string;
  bias: string;
}

function projection(g: GraphBuilder, x: string, prefix: string, c: InferenceLayerContext): Projection {
  return { out: matmul(g, x, `${prefix}.weight`, [weightOf(c, `${prefix}.weight`)], c), bias: g.weight(`${prefix}.bias`) };
}

/** x · [W₁ᵀ W₂ᵀ …] for weights stored [out, in] as PyTorch does. */
function matmul(g: GraphBuilder, x: string, name: string, ws: Float32Tensor[], c: InferenceLayerContext): string {
  const wT = transposeConcat(ws);
  return c.precision === 'int8' ? int8MatMul(g, x, name, wT, c.quantized) : g.op('MatMul', [x, g.derived(`${name}.T`, wT)]);
}

/** LayerNorm(projection + bias + skip), the residual connection that closes each half of a layer. */
function residualNorm(g: GraphBuilder, proj: Projection, skip: string, prefix: string, c: InferenceLayerContext): string {
  const norm = `${prefix}.LayerNorm`;
  if (!c.fusions.skipLayerNorm) return layerNorm(g, g.op('Add', [g.op('Add', [proj.out, proj.bias]), skip]), norm, c.cfg.layerNormEps);
  return g.msOp('SkipLayerNormalization', [proj.out, skip, g.weight(`${norm}.weight`), g.weight(`${norm}.bias`), proj.bias], {
    epsilon: { float: c.cfg.layerNormEps },
  });
}

function selfAttention(g: GraphBuilder, x: string, prefix: string, c: InferenceLayerContext): string {
  const { cfg } = c;
  const names = ['query', 'key', 'value'];
  const ws = names.map((n) => weightOf(c, `${prefix}.${n}.weight`));
  if (c.fusions.multiHeadAttention) {
    const qkv = matmul(g, x, `${prefix}.qkv.weight`, ws, c);
    const [q, k, v] = g.opN('Split', [qkv, g.ints([cfg.hiddenSize, cfg.hiddenSize, cfg.hiddenSize])], 3, { axis: -1 });
    const bias = g.op('Concat', names.map((n) => g.weight(`${prefix}.${n}.bias`)), { axis: 0 });
    return g.msOp('MultiHeadAttention', [q, k, v, bias, c.keyMask], { num_heads: cfg.numHeads });
  }
  const headDim = cfg.hiddenSize / cfg.numHeads;
  const heads = (i: number, perm: number[]) => {
    const proj = g.op('Add', [matmul(g, x, `${prefix}.${names[i]}.weight`, [ws[i]], c), g.weight(`${prefix}.${names[i]}.bias`)]);
    return g.op('Transpose', [g.op('Reshape', [proj, g.ints([0, 0, cfg.numHeads, headDim])])], { perm });
  };
  const scores = g.op('Add', [g.op('Mul', [g.op('MatMul', [heads(0, [0, 2, 1, 3]), heads(1, [0, 2, 3, 1])]), g.float(1 / Math.sqrt(headDim))]), c.bias]);
  const context = g.op('MatMul', [g.op('Softmax', [scores], { axis: -1 }), heads(2, [0, 2, 1, 3])]);
  return g.op('Reshape', [g.op('Transpose', [context], { perm: [0, 2, 1, 3] }), g.ints([0, 0, cfg.hiddenSize])]);
}

function weightOf(c: InferenceLayerContext, name: string): Float32Tensor {
  const w = c.weights.get(name);
  if (!w) throw new Error(`weight "${name}" is missing from the model`);
  return w;
}

/** [out, in] weights → one [in, Σout] matrix (each weight's columns side by side). */
function transposeConcat(ws: Float32Tensor[]): Float32Tensor {
  const k = ws[0].shape[1];
  const n = ws.reduce((a, w) => a + w.shape[0], 0);
  const data = new Float32Array(k * n);
  let col = 0;
  for (const w of ws) {
    const out = w.shape[0];
    for (let o = 0; o < out; o++) for (let i = 0; i < k; i++) data[i * n + col + o] = w.data[o * k + i];
    col += out;
  }
  return { shape: [k, n], data };
}
