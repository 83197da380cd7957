import { GraphBuilder } from '../../encoder/graph/graph-builder';
import type { Float32Tensor } from '../../encoder/safetensors';
import type { Llama2cConfig, Llama2cWeights } from './checkpoint';
import { ropeTables } from './rope';

/** Added to attention scores a query must not see: far below any real score, yet finite, so softmax never meets ∞ − ∞. */
const MASKED = -1e9;

/** W stored (rows, cols) row-major, as the (cols, rows) matrix MatMul multiplies by. */
function transposed(w: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = w[r * cols + c];
  return out;
}

/** Several (rows_i, cols) matrices stacked and transposed into one (cols, Σ rows_i): one MatMul instead of several. */
function stackedTransposed(parts: { w: Float32Array; rows: number }[], cols: number): Float32Tensor {
  const total = parts.reduce((sum, p) => sum + p.rows, 0);
  const data = new Float32Array(cols * total);
  let offset = 0;
  for (const { w, rows } of parts) {
    const t = transposed(w, rows, cols);
    for (let c = 0; c < cols; c++) data.set(t.subarray(c * rows, (c + 1) * rows), c * total + offset);
    offset += rows;
  }
  return { shape: [cols, total], data };
}

/**
 * W (rows = output features) with each output pair (2j, 2j + 1) replaced by (−row 2j+1, row 2j): x·W'ᵀ is the
 * partner term of RoPE, so the rotation becomes q ⊙ cos + q' ⊙ sin with q' from the same fused projection.
 */
function pairSwapped(w: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r += 2) {
    for (let c = 0; c < cols; c++) {
      out[r * cols + c] = -w[(r + 1) * cols + c];
      out[(r + 1) * cols + c] = w[r * cols + c];
    }
  }
  return out;
}

/** A RoPE table [seqLen, half] widened to [seqLen, width]: column c gets pair (c mod headSize) / 2 of its head. */
function widened(table: Float32Array, seqLen: number, headSize: number, width: number): Float32Array {
  const half = headSize / 2;
  const out = new Float32Array(seqLen * width);
  for (let pos = 0; pos < seqLen; pos++) for (let c = 0; c < width; c++) out[pos * width + c] = table[pos * half + ((c % headSize) >> 1)];
  return out;
}

/** The graph's weights by name, already in the layouts the ops take (matrices transposed, projections fused). */
function graphWeights(config: Llama2cConfig, weights: Llama2cWeights): Map<string, Float32Tensor> {
  const { dim, hiddenDim, vocabSize, seqLen } = config;
  const kvDim = (dim * config.nKvHeads) / config.nHeads;
  const headSize = dim / config.nHeads;
  const rope = ropeTables(config);
  const qkWidth = dim + kvDim;
  const map = new Map<string, Float32Tensor>([
    ['embedding', { shape: [vocabSize, dim], data: weights.tokenEmbedding }],
    ['rms_final', { shape: [dim], data: weights.rmsFinal }],
    ['classifier', { shape: [dim, vocabSize], data: transposed(weights.classifier, vocabSize, dim) }],
    ['rope_cos', { shape: [seqLen, qkWidth], data: widened(rope.cos, seqLen, headSize, qkWidth) }],
    ['rope_sin', { shape: [seqLen, qkWidth], data: widened(rope.sin, seqLen, headSize, qkWidth) }],
  ]);
  const queryScale = 1 / Math.sqrt(headSize);
  weights.layers.forEach((layer, l) => {
    map.set(`l${l}.rms_att`, { shape: [dim], data: layer.rmsAtt });
    // Attention's 1/√headSize is folded into wq (RoPE is linear), saving a pass over the [seq, seq] scores.
    const wq = layer.wq.map((w) => w * queryScale);
    const parts = [wq, layer.wk, pairSwapped(wq, dim, dim), pairSwapped(layer.wk, kvDim, dim), layer.wv];
    map.set(`l${l}.wqkv`, stackedTransposed(parts.map((w) => ({ w, rows: w.length / dim })), dim));
    map.set(`l${l}.wo`, { shape: [dim, dim], data: transposed(layer.wo, dim, dim) });
    map.set(`l${l}.rms_ffn`, { shape: [dim], data: layer.rmsFfn });
    map.set(`l${l}.w13`, stackedTransposed([{ w: layer.w1, rows: hiddenDim }, { w: layer.w3, rows: hiddenDim }], dim));
    map.set(`l${l}.w2`, { shape: [hiddenDim, dim], data: transposed(layer.w2, dim, hiddenDim) });
  });
  return map;
}

/** x · rsqrt(mean(x²) + 1e-5) · w over the last axis, as run.c's rmsnorm. */
function rmsNorm(g: GraphBuilder, x: string, weight: string): string {
  const meanSquare = g.op('ReduceMean', [g.op('Mul', [x, x])], { axes: [-1], keepdims: 1 });
  const scale = g.op('Div', [g.float(1), g.op('Sqrt', [g.op('Add', [meanSquare, g.float(1e-5)])])]);
  return g.op('Mul', [g.op('Mul', [x, scale]), g.weight(weight)]);
}

/**
 * The llama2.c transformer as one ONNX graph over a batch of right-padded sequences. Causal attention alone keeps
 * real positions from seeing the padding after them, so no padding mask is needed; padded positions' outputs are
 * garbage the caller ignores.
 *
 * Input `tokens` int64 [batch, seq]. Outputs, each per position t (predicting the token after tokens[..t]):
 * - `log_probs` float [batch, seq, vocab]: the log-softmax distribution;
 * - `next_log_prob` float [batch, seq]: log-prob of tokens[t + 1] (position seq − 1 scores token 0: ignore it);
 * - `best` int32 [batch, seq] and `best_log_prob` float [batch, seq]: argmax (lowest id among ties) and its log-prob.
 * Scoring fetches the last three only, so no [batch, seq, vocab] tensor crosses to JavaScript.
 */
export function buildLlama2cGraph(config: Llama2cConfig, weights: Llama2cWeights): Uint8Array {
  const { dim, nLayers, nHeads, nKvHeads, hiddenDim, vocabSize } = config;
  const headSize = dim / nHeads;
  const kvDim = headSize * nKvHeads;
  const group = nHeads / nKvHeads;
  const g = new GraphBuilder({ weights: graphWeights(config, weights) });
  const tokens = g.input('tokens', 'int64', ['batch', 'seq']);

  const seq = g.op('Gather', [g.op('Shape', [tokens]), g.ints([1], true)]);
  const positions = g.op('Range', [g.ints([0], true), seq, g.ints([1], true)]);
  const [cos, sin] = [g.op('Gather', [g.weight('rope_cos'), positions]), g.op('Gather', [g.weight('rope_sin'), positions])];
  // Additive causal mask [seq, seq]: MASKED above the diagonal, 0 on and below it.
  const square = g.op('Concat', [g.op('Unsqueeze', [seq, g.ints([0])]), g.op('Unsqueeze', [seq, g.ints([0])])], { axis: 0 });
  const causal = g.op('Trilu', [g.op('Expand', [g.float(MASKED), square]), g.ints([1], true)], { upper: 1 });

  let x = g.op('Gather', [g.weight('embedding'), tokens]);
  for (let l = 0; l < nLayers; l++) {
    const qkv = g.op('MatMul', [rmsNorm(g, x, `l${l}.rms_att`), g.weight(`l${l}.wqkv`)]);
    // RoPE on queries and keys at once: run.c turns each pair (2j, 2j + 1) of a head by its position's angle.
    const [qk, qkPartners, v] = g.opN('Split', [qkv, g.ints([dim + kvDim, dim + kvDim, kvDim])], 3, { axis: -1 });
    const rotated = g.op('Add', [g.op('Mul', [qk, cos]), g.op('Mul', [qkPartners, sin])]);
    const [q, k] = g.opN('Split', [rotated, g.ints([dim, kvDim])], 2, { axis: -1 });
    // Grouped-query attention without copying keys: query heads kv·group + j are viewed as [batch, kv, group, seq,
    // head] and each kv head's keys/values as [batch, kv, 1, ·, ·], which MatMul broadcasts over the group.
    const heads = (x: string, count: number) => g.op('Reshape', [x, g.ints([0, 0, count, headSize])]);
    const qHeads = g.op('Reshape', [g.op('Transpose', [heads(q, nHeads)], { perm: [0, 2, 1, 3] }), g.ints([0, nKvHeads, group, -1, headSize])]);
    const kT = g.op('Unsqueeze', [g.op('Transpose', [heads(k, nKvHeads)], { perm: [0, 2, 3, 1] }), g.ints([2])]);
    const vHeads = g.op('Unsqueeze', [g.op('Transpose', [heads(v, nKvHeads)], { perm: [0, 2, 1, 3] }), g.ints([2])]);
    const scores = g.op('Add', [g.op('MatMul', [qHeads, kT]), causal]);
    const context = g.op('MatMul', [g.op('Softmax', [scores], { axis: -1 }), vHeads]); // [batch, kv, group, seq, head]
    const merged = g.op('Reshape', [
      g.op('Transpose', [g.op('Reshape', [context, g.ints([0, nHeads, -1, headSize])])], { perm: [0, 2, 1, 3] }),
      g.ints([0, 0, dim]),
    ]);
    x = g.op('Add', [x, g.op('MatMul', [merged, g.weight(`l${l}.wo`)])]);

    const [gate, up] = g.opN('Split', [g.op('MatMul', [rmsNorm(g, x, `l${l}.rms_ffn`), g.weight(`l${l}.w13`)]), g.ints([hiddenDim, hiddenDim])], 2, { axis: -1 });
    const swiglu = g.op('Mul', [g.op('Mul', [gate, g.op('Sigmoid', [gate])]), up]); // silu(w1 x) · (w3 x)
    x = g.op('Add', [x, g.op('MatMul', [swiglu, g.weight(`l${l}.w2`)])]);
  }
  const logProbs = g.op('LogSoftmax', [g.op('MatMul', [rmsNorm(g, x, 'rms_final'), g.weight('classifier')])], { axis: -1 });
  g.output(logProbs, 'log_probs', 'float', ['batch', 'seq', vocabSize]);

  const following = g.op('Pad', [g.op('Slice', [tokens, g.ints([1]), g.ints([Number.MAX_SAFE_INTEGER]), g.ints([1])]), g.ints([0, 0, 0, 1])]);
  const chosen = g.op('GatherElements', [logProbs, g.op('Unsqueeze', [following, g.ints([2])])], { axis: 2 });
  g.output(g.op('Squeeze', [chosen, g.ints([2])]), 'next_log_prob', 'float', ['batch', 'seq']);
  g.output(g.op('Cast', [g.op('ArgMax', [logProbs], { axis: -1, keepdims: 0 })], { to: 6 /* INT32 */ }), 'best', 'int32', ['batch', 'seq']);
  g.output(g.op('ReduceMax', [logProbs], { axes: [-1], keepdims: 0 }), 'best_log_prob', 'float', ['batch', 'seq']);
  return g.toBytes('llama2c');
}
