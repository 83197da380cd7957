import type { GraphBuilder } from '../../encoder/graph/graph-builder';
import type { Float32Tensor } from '../../encoder/safetensors';
import type { Grads } from './backward-ops';
import type { RetrievalLoss } from './retrieval-loss';

/** A built training-step graph and how to feed it. */
export interface TrainGraph {
  model: Uint8Array;
  /** Every weight the graph reads, as graph inputs under these names. */
  weightNames: string[];
  /** Weights with a gradient output `grad.<name>`, in output order. */
  trainable: string[];
}

export const GRAD_PREFIX = 'grad.';
export const GRAD_NORM = 'grad_norm';
export const QUERY_EMB = 'query_emb';

/**
 * Declares the outputs every training graph has: loss, query_emb, log_probs, grad.<name> per trained weight and
 * grad_norm, the global gradient norm that AdamW clips by (summed where each gradient is still in cache, instead of
 * a separate pass over all of them in JavaScript).
 */
export function emitTrainOutputs(
  g: GraphBuilder, out: RetrievalLoss, grads: Grads, weights: ReadonlyMap<string, Float32Tensor>, hidden: number, graphName: string,
): TrainGraph {
  g.output(out.loss, 'loss', 'float', []);
  g.output(out.queryEmb, QUERY_EMB, 'float', ['batch', hidden]);
  g.output(out.logProbs, 'log_probs', 'float', ['batch', 'k']);
  const trainable = [...grads.keys()];
  for (const name of trainable) g.output(grads.get(name)!, GRAD_PREFIX + name, 'float', weights.get(name)!.shape);
  const squares = trainable.map((name) => g.op('ReduceSumSquare', [grads.get(name)!], { keepdims: 0 }));
  g.output(g.op('Sqrt', [squares.length === 1 ? squares[0] : g.op('Sum', squares)]), GRAD_NORM, 'float', []);
  return { model: g.toBytes(graphName), weightNames: g.weightNames(), trainable };
}
