import type { Float32Tensor } from '../safetensors';
import type { GraphBuilder } from './graph-builder';

/**
 * int8 linear layers for the CPU. Weights are quantised here, at build time: symmetric int8 per output column.
 * Activations are quantised per call and per token (row): uint8 around the fixed zero point 128, with each row's own
 * scale max|x_row|/127. Per-token scales keep one row's outliers (or a batch-mate's, or padding) from coarsening
 * every other row, and make a text's vector independent of the batch it is embedded in, which ORT's
 * DynamicQuantizeMatMul (one scale per tensor) does not; measured at the same speed (10.7 vs 10.5 CPU ms per
 * 128-token sequence, MiniLM shape). The product runs in com.microsoft.MatMulIntegerToFloat (MLAS's u8s8 GEMM,
 * VNNI where the CPU has it) with the column scales in its epilogue; the row scales follow in one Mul.
 *
 * Weight-only schemes measured slower here: MatMulNBits at 8 bits ran no faster than fp32, and at 4 bits fell to
 * cosine 0.96 against fp32; a signed-int8 MatMulInteger ran at a quarter of fp32's speed (no fast kernel).
 */

interface QuantizedRows {
  /** uint8 [rows, k] */
  xq: string;
  /** float [rows, 1] */
  scale: string;
  /** The uint8 scalar 128. */
  zeroPoint: string;
}

/** Quantised inputs by the value they quantise: Q, K and V read the same hidden states and share one quantisation. */
export type QuantizedInputs = Map<string, QuantizedRows>;

/** x [..., k] · wT [k, n] at int8 → float [..., n]. */
export function int8MatMul(g: GraphBuilder, x: string, name: string, wT: Float32Tensor, cache: QuantizedInputs): string {
  const [k, n] = wT.shape;
  const { data, scales } = quantizePerColumn(wT);
  const { xq, scale, zeroPoint } = quantizeRows(g, x, k, cache);
  const product = g.msOp('MatMulIntegerToFloat', [
    xq,
    g.initializer(`${name}.int8`, 'int8', [k, n], data),
    g.float(1),
    g.initializer(`${name}.scale`, 'float', [n], scales),
    zeroPoint,
  ]);
  const leading = g.op('Slice', [g.op('Shape', [x]), g.ints([0]), g.ints([-1])]);
  return g.op('Reshape', [g.op('Mul', [product, scale]), g.op('Concat', [leading, g.ints([n])], { axis: 0 })]);
}

function quantizeRows(g: GraphBuilder, x: string, k: number, cache: QuantizedInputs): QuantizedRows {
  const cached = cache.get(x);
  if (cached) return cached;
  const rows = g.op('Reshape', [x, g.ints([-1, k])]);
  const amax = g.op('ReduceMax', [g.op('Abs', [rows])], { axes: [1], keepdims: 1 });
  const scale = g.op('Max', [g.op('Div', [amax, g.float(127)]), g.float(1e-12)]);
  const zeroPoint = g.uint8(128);
  const quantized = { xq: g.op('QuantizeLinear', [g.op('Div', [rows, scale]), g.float(1), zeroPoint]), scale, zeroPoint };
  cache.set(x, quantized);
  return quantized;
}

/** Symmetric int8 per column of w [k, n]: scale_j = max|w[:, j]| / 127, q = round(w / scale_j). */
export function quantizePerColumn(w: Float32Tensor): { data: Int8Array; scales: Float32Array } {
  const [k, n] = w.shape;
  const scales = new Float32Array(n);
  for (let i = 0; i < k; i++) for (let j = 0; j < n; j++) scales[j] = Math.max(scales[j], Math.abs(w.data[i * n + j]));
  for (let j = 0; j < n; j++) scales[j] = scales[j] > 0 ? scales[j] / 127 : 1;
  const data = new Int8Array(k * n);
  for (let i = 0; i < k; i++) for (let j = 0; j < n; j++) data[i * n + j] = Math.round(w.data[i * n + j] / scales[j]);
  return { data, scales };
}
