import type { Pooling } from './bert-config';

/**
 * Pools one row of per-token states [batch, seq, dim] (a plain ONNX export's last_hidden_state) over its first
 * `length` tokens, then L2-normalises, matching what the generated BERT graph does inside ONNX.
 */
export function poolRow(states: Float32Array, row: number, length: number, seq: number, dim: number, pooling: Pooling): Float32Array {
  const out = new Float32Array(dim);
  const base = row * seq * dim;
  const tokens = pooling === 'cls' ? 1 : length;
  for (let t = 0; t < tokens; t++) {
    for (let d = 0; d < dim; d++) out[d] += states[base + t * dim + d];
  }
  for (let d = 0; d < dim; d++) out[d] /= tokens;
  return l2Normalize(out);
}

/** In place: x / max(‖x‖₂, 1e-12). */
export function l2Normalize(v: Float32Array): Float32Array {
  let sum = 0;
  for (const x of v) sum += x * x;
  const scale = 1 / Math.max(Math.sqrt(sum), 1e-12);
  for (let i = 0; i < v.length; i++) v[i] *= scale;
  return v;
}
