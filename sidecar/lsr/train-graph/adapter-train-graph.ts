import { linear } from '../../encoder/graph/bert-layers';
import { GraphBuilder } from '../../encoder/graph/graph-builder';
import type { Float32Tensor } from '../../encoder/safetensors';
import { linearBackward, type Grads } from './backward-ops';
import { lossInputs, retrievalLoss } from './retrieval-loss';
import { emitTrainOutputs, type TrainGraph } from './train-outputs';

/** The adapter's weight names: a linear layer `adapter` (weight [dim, dim], bias [dim]). */
export const ADAPTER_PREFIX = 'adapter';

/** W = I, b = 0: the adapter starts as a no-op on the frozen encoder's embeddings. */
export function identityAdapter(dim: number): Map<string, Float32Tensor> {
  const weight = new Float32Array(dim * dim);
  for (let i = 0; i < dim; i++) weight[i * dim + i] = 1;
  return new Map([
    [`${ADAPTER_PREFIX}.weight`, { shape: [dim, dim], data: weight }],
    [`${ADAPTER_PREFIX}.bias`, { shape: [dim], data: new Float32Array(dim) }],
  ]);
}

/**
 * Training step for encoders whose weights cannot be trained (a plain model.onnx): a linear query adapter on top of
 * their query embeddings, base_emb float [batch, dim] → W·x + b → L2 norm → the LSR loss. Outputs as the BERT graph;
 * `abstain` as there (`weights` then holds the abstention score too).
 */
export function buildAdapterTrainGraph(dim: number, weights: ReadonlyMap<string, Float32Tensor>, abstain = false): TrainGraph {
  const g = new GraphBuilder({ weights, weightsAsInputs: true });
  const base = g.input('base_emb', 'float', ['batch', dim]);
  const inputs = lossInputs(g, dim, abstain);
  // The shared `linear` takes [batch, seq, in]: view each query as a one-token sequence.
  const base3 = g.op('Unsqueeze', [base, g.ints([1])]);
  const adapted = g.op('Squeeze', [linear(g, base3, ADAPTER_PREFIX), g.ints([1])]);
  const grads: Grads = new Map();
  const out = retrievalLoss(g, adapted, inputs, grads);
  linearBackward(g, grads, base3, g.op('Unsqueeze', [out.dQuery, g.ints([1])]), ADAPTER_PREFIX, [dim, dim], false);
  return emitTrainOutputs(g, out, grads, weights, dim, 'adapter_lsr_train_step');
}
