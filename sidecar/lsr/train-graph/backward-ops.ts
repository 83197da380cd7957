import type { GraphBuilder } from '../../encoder/graph/graph-builder';

/**
 * Hand-derived backward passes of the BERT layer pieces, emitted as plain ONNX ops (standard ONNX has no
 * LayerNorm-grad or attention-grad op and no training build of ORT exists for Node). Each function takes the
 * forward values it needs and the upstream gradient `dy`, and returns the input gradient; weight gradients are
 * recorded in `grads` under the weight's name. Shapes: activations are [batch, seq, features] unless noted.
 */

export type Grads = Map<string, string>;

/** Sums over every axis but the last: the gradient of a bias broadcast over [..., features]. */
function sumToLast(g: GraphBuilder, dy: string, features: number): string {
  return g.op('ReduceSum', [g.op('Reshape', [dy, g.ints([-1, features])]), g.ints([0])], { keepdims: 0 });
}

/**
 * y = x·Wᵀ + b with W [out, in]: dW = dyᵀ·x (one Gemm over the flattened batch), db = Σ dy, dx = dy·W.
 * Returns dx, or undefined when `needDx` is false (the lowest trained layer's input needs no gradient).
 */
export function linearBackward(
  g: GraphBuilder, grads: Grads, x: string, dy: string, prefix: string, [out, inp]: [number, number], needDx: boolean,
): string | undefined {
  const w = g.weight(`${prefix}.weight`);
  const dy2 = g.op('Reshape', [dy, g.ints([-1, out])]);
  grads.set(`${prefix}.weight`, g.op('Gemm', [dy2, g.op('Reshape', [x, g.ints([-1, inp])])], { transA: 1 }));
  grads.set(`${prefix}.bias`, sumToLast(g, dy, out));
  return needDx ? g.op('MatMul', [dy, w]) : undefined;
}

/**
 * y = γ·x̂ + β with x̂ = (x − μ)·r, r = 1/√(σ² + ε) over the last axis:
 * dγ = Σ dy·x̂, dβ = Σ dy, dx = r·(dx̂ − mean(dx̂) − x̂·mean(dx̂·x̂)) with dx̂ = dy·γ.
 * μ and r are recomputed from x: cheaper than threading LayerNormalization's optional outputs through the forward.
 */
export function layerNormBackward(g: GraphBuilder, grads: Grads, x: string, dy: string, prefix: string, hidden: number, eps: number): string {
  const mean = (t: string) => g.op('ReduceMean', [t], { axes: [-1], keepdims: 1 });
  const centred = g.op('Sub', [x, mean(x)]);
  const variance = mean(g.op('Mul', [centred, centred]));
  const rstd = g.op('Reciprocal', [g.op('Sqrt', [g.op('Add', [variance, g.float(eps)])])]);
  const xHat = g.op('Mul', [centred, rstd]);
  grads.set(`${prefix}.weight`, sumToLast(g, g.op('Mul', [dy, xHat]), hidden));
  grads.set(`${prefix}.bias`, sumToLast(g, dy, hidden));
  const dxHat = g.op('Mul', [dy, g.weight(`${prefix}.weight`)]);
  const inner = g.op('Sub', [g.op('Sub', [dxHat, mean(dxHat)]), g.op('Mul', [xHat, mean(g.op('Mul', [dxHat, xHat]))])]);
  return g.op('Mul', [inner, rstd]);
}

/** Exact GELU: d/du [u·Φ(u)] = Φ(u) + u·φ(u), with Φ(u) = ½(1 + erf(u/√2)) and φ the standard normal density. */
export function geluBackward(g: GraphBuilder, u: string, dy: string): string {
  const cdf = g.op('Mul', [g.op('Add', [g.op('Erf', [g.op('Mul', [u, g.float(Math.SQRT1_2)])]), g.float(1)]), g.float(0.5)]);
  const density = g.op('Mul', [g.op('Exp', [g.op('Mul', [g.op('Mul', [u, u]), g.float(-0.5)])]), g.float(1 / Math.sqrt(2 * Math.PI))]);
  return g.op('Mul', [dy, g.op('Add', [cdf, g.op('Mul', [u, density])])]);
}

/** p = softmax(z) along the last axis: dz = p·(dp − Σ dp·p). */
export function softmaxBackward(g: GraphBuilder, p: string, dp: string): string {
  const dot = g.op('ReduceSum', [g.op('Mul', [dp, p]), g.ints([-1])], { keepdims: 1 });
  return g.op('Mul', [p, g.op('Sub', [dp, dot])]);
}

/** e = x / ‖x‖ along the last axis (‖x‖ above the 1e-12 floor): dx = (de − e·(e·de)) / ‖x‖. */
export function l2NormalizeBackward(g: GraphBuilder, x: string, e: string, de: string): string {
  const norm = g.op('Max', [g.op('ReduceL2', [x], { axes: [-1], keepdims: 1 }), g.float(1e-12)]);
  const dot = g.op('ReduceSum', [g.op('Mul', [e, de]), g.ints([-1])], { keepdims: 1 });
  return g.op('Div', [g.op('Sub', [de, g.op('Mul', [e, dot])]), norm]);
}
