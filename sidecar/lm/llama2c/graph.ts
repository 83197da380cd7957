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

/** Queries per block of blockedAttention; 64 measured best against 32 and 128 (and far better than unblocked). */
const QUERY_BLOCK = 64;

/** A block of QUERY_BLOCK queries: where it starts, how many keys it sees, its rows of the mask. */
interface QueryBlock {
  start: number;
  keyEnd: string;
  mask: string;
}

/** The query blocks of blockedAttention with their key counts and masks, computed once for all layers. */
function queryBlocks(g: GraphBuilder, mask: string, pastSlots: string, maxSeq: number): QueryBlock[] {
  const blocks: QueryBlock[] = [];
  for (let start = 0; start < maxSeq; start += QUERY_BLOCK) {
    const end = start + QUERY_BLOCK;
    const keyEnd = g.op('Unsqueeze', [g.op('Add', [pastSlots, g.ints([end], true)]), g.ints([0])]);
    const rows = g.op('Slice', [mask, g.ints([start]), g.ints([end]), g.ints([3])]);
    blocks.push({ start, keyEnd, mask: g.op('Slice', [rows, g.ints([0]), keyEnd, g.ints([4])]) });
  }
  return blocks;
}

/**
 * softmax(q·kᵀ + mask)·v, in blocks of QUERY_BLOCK queries that each take only the keys up to their own last
 * position: causality masks the rest anyway. Skipping the upper triangle and keeping each block's scores small
 * enough for the cache cut a 450-token row from 12.9 to 7.6 ms (a 108-token row: no change). Blocks past the
 * sequence's end are empty slices, which cost little. Shapes: q [batch, kv, group, seq, head], kT [batch, kv, 1,
 * head, keys], v [batch, kv, 1, keys, head], mask [batch, 1, 1, seq, keys], keys = past slots + seq.
 */
function blockedAttention(g: GraphBuilder, q: string, kT: string, v: string, blocks: QueryBlock[]): string {
  const outputs = blocks.map(({ start, keyEnd, mask }) => {
    const keys = (t: string, axis: number) => g.op('Slice', [t, g.ints([0]), keyEnd, g.ints([axis])]);
    const queries = g.op('Slice', [q, g.ints([start]), g.ints([start + QUERY_BLOCK]), g.ints([3])]);
    const scores = g.op('Add', [g.op('MatMul', [queries, keys(kT, 4)]), mask]);
    return g.op('MatMul', [g.op('Softmax', [scores], { axis: -1 }), keys(v, 3)]);
  });
  return g.op('Concat', outputs, { axis: 3 });
}

/**
 * The llama2.c transformer as one ONNX graph over a batch of right-padded sequences, each continuing a prefix whose
 * keys and values were computed before (the prefix may be empty). Causal attention keeps real positions from seeing
 * the padding after them; padded positions' outputs are garbage the caller ignores.
 *
 * Inputs: `tokens` int32 [batch, seq], the new tokens; `past_length` int32 [batch], each row's prefix length;
 * `past_key_l` / `past_value_l` float [batch, kvHeads, past, headSize] per layer l, row b's prefix in its first
 * past_length[b] slots (past = 0 for a plain forward pass). Outputs, each per new position t (predicting the token
 * after it):
 * - `log_probs` float [batch, seq, vocab]: the log-softmax distribution;
 * - `next_log_prob` float [batch, seq]: log-prob of tokens[t + 1] (position seq − 1 scores token 0: ignore it);
 * - `best` int32 [batch, seq] and `best_log_prob` float [batch, seq]: argmax (lowest id among ties) and its log-prob;
 * - `key_l` / `value_l` float [batch, kvHeads, seq, headSize]: the new positions' keys (after RoPE) and values.
 * Scoring fetches next_log_prob, best and best_log_prob only, so no [batch, seq, vocab] tensor crosses to JavaScript.
 */
export function buildLlama2cGraph(config: Llama2cConfig, weights: Llama2cWeights): Uint8Array {
  const { dim, nLayers, nHeads, nKvHeads, hiddenDim, vocabSize, seqLen } = config;
  const headSize = dim / nHeads;
  const kvDim = headSize * nKvHeads;
  const group = nHeads / nKvHeads;
  const g = new GraphBuilder({ weights: graphWeights(config, weights) });
  // int32 inputs spare JavaScript a BigInt per token.
  const tokens = g.input('tokens', 'int32', ['batch', 'seq']);
  const pastLength = g.op('Cast', [g.input('past_length', 'int32', ['batch'])], { to: 7 /* INT64 */ });
  const past = Array.from({ length: nLayers }, (_, l) => ({
    key: g.input(`past_key_${l}`, 'float', ['batch', nKvHeads, 'past', headSize]),
    value: g.input(`past_value_${l}`, 'float', ['batch', nKvHeads, 'past', headSize]),
  }));

  // Absolute positions: new token j of row b sits at past_length[b] + j (padding runs past the end: clipped for RoPE).
  const seq = g.op('Gather', [g.op('Shape', [tokens]), g.ints([1], true)]);
  const pastSlots = g.op('Gather', [g.op('Shape', [past[0].key]), g.ints([2], true)]);
  const column = (n: string) => g.op('Unsqueeze', [g.op('Range', [g.ints([0], true), n, g.ints([1], true)]), g.ints([0])]); // [1, n]
  const rowPast = g.op('Unsqueeze', [pastLength, g.ints([1])]); // [batch, 1]
  const positions = g.op('Add', [rowPast, column(seq)]); // [batch, seq]
  const ropeAt = g.op('Min', [positions, g.ints([seqLen - 1], true)]);
  const [cos, sin] = [g.op('Gather', [g.weight('rope_cos'), ropeAt]), g.op('Gather', [g.weight('rope_sin'), ropeAt])];
  // Which keys each query sees: key slots are the past slots then the new tokens; a past slot past the row's own
  // past length is empty. Visible iff the key's position ≤ the query's, empty slots never.
  const slot = column(pastSlots);
  const pastPositions = g.op('Where', [g.op('Less', [slot, rowPast]), slot, g.ints([Number.MAX_SAFE_INTEGER], true)]); // [batch, past]
  const keyPositions = g.op('Concat', [pastPositions, positions], { axis: 1 }); // [batch, past + seq]
  const visible = g.op('LessOrEqual', [g.op('Unsqueeze', [keyPositions, g.ints([1])]), g.op('Unsqueeze', [positions, g.ints([2])])]);
  const mask = g.op('Unsqueeze', [g.op('Where', [visible, g.float(0), g.float(MASKED)]), g.ints([1, 2])]); // [batch, 1, 1, seq, keys]
  const blocks = queryBlocks(g, mask, pastSlots, seqLen);

  let x = g.op('Gather', [g.weight('embedding'), tokens]);
  for (let l = 0; l < nLayers; l++) {
    const qkv = g.op('MatMul', [rmsNorm(g, x, `l${l}.rms_att`), g.weight(`l${l}.wqkv`)]);
    // RoPE on queries and keys at once: run.c turns each pair (2j, 2j + 1) of a head by its position's angle.
    const [qk, qkPartners, v] = g.opN('Split', [qkv, g.ints([dim + kvDim, dim + kvDim, kvDim])], 3, { axis: -1 });
    const rotated = g.op('Add', [g.op('Mul', [qk, cos]), g.op('Mul', [qkPartners, sin])]);
    const [q, k] = g.opN('Split', [rotated, g.ints([dim, kvDim])], 2, { axis: -1 });
    const heads = (t: string, count: number) => g.op('Transpose', [g.op('Reshape', [t, g.ints([0, 0, count, headSize])])], { perm: [0, 2, 1, 3] });
    const [newKeys, newValues] = [heads(k, nKvHeads), heads(v, nKvHeads)]; // [batch, kv, seq, head]
    g.output(newKeys, `key_${l}`, 'float', ['batch', nKvHeads, 'seq', headSize]);
    g.output(newValues, `value_${l}`, 'float', ['batch', nKvHeads, 'seq', headSize]);
    // Grouped-query attention without copying keys: query heads kv·group + j are viewed as [batch, kv, group, seq,
    // head] and each kv head's keys/values as [batch, kv, 1, ·, ·], which MatMul broadcasts over the group.
    const qHeads = g.op('Reshape', [heads(q, nHeads), g.ints([0, nKvHeads, group, -1, headSize])]);
    const keys = g.op('Concat', [past[l].key, newKeys], { axis: 2 });
    const values = g.op('Concat', [past[l].value, newValues], { axis: 2 });
    const kT = g.op('Unsqueeze', [g.op('Transpose', [keys], { perm: [0, 1, 3, 2] }), g.ints([2])]);
    const context = blockedAttention(g, qHeads, kT, g.op('Unsqueeze', [values, g.ints([2])]), blocks); // [batch, kv, group, seq, head]
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
