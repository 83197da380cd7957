import type { GraphBuilder } from '../../encoder/graph/graph-builder';
import { l2Normalize } from '../../encoder/graph/bert-layers';
import { ABSTAIN_SCORE } from '../../retrieve/abstention';
import { l2NormalizeBackward, type Grads } from './backward-ops';

/** The LSR inputs every training graph shares (candidates and teacher distribution are constants). */
export interface LossInputs {
  /** L2-normalised candidate passage embeddings, float [batch, k, hidden]. */
  candEmb: string;
  /** LM teacher distribution Q over the k candidates, float [batch, k] (rows sum to 1); [batch, k + 1] with abstention. */
  targetQ: string;
  /** Temperature γ, float scalar. */
  gamma: string;
  /** An empty passage ∅ is candidate k + 1 (last), with the learned score `abstain.bias` (see abstention.ts). */
  abstain: boolean;
}

export function lossInputs(g: GraphBuilder, hidden: number, abstain = false): LossInputs {
  return {
    candEmb: g.input('cand_emb', 'float', ['batch', 'k', hidden]),
    targetQ: g.input('target_q', 'float', ['batch', abstain ? 'k_and_empty' : 'k']),
    gamma: g.input('gamma', 'float', []),
    abstain,
  };
}

export interface RetrievalLoss {
  /** L2-normalised query embeddings [batch, hidden]. */
  queryEmb: string;
  /** log P_R [batch, k], or [batch, k + 1] with ∅ last. */
  logProbs: string;
  /** mean over the batch of KL(Q ‖ P_R), scalar. */
  loss: string;
  /** ∂loss/∂(unnormalised query vector) [batch, hidden]. */
  dQuery: string;
}

/**
 * REPLUG's LSR objective from an unnormalised query vector x: e = x/‖x‖, s_i = e·D_i (cosine, as D is normalised),
 * P_R = softmax(s/γ), loss = mean_b Σ_i Q_i (log Q_i − log P_R,i) with 0·log 0 = 0; then its gradient back to x:
 * ∂loss/∂(s/γ) = (P_R·ΣQ − Q)/B, ∂loss/∂e = Σ_i (∂loss/∂s_i)·D_i, then through the normalisation.
 * With abstention, s_{k+1} = τ for every query, so ∂loss/∂τ = Σ_b ∂loss/∂s_{b,k+1} (recorded in `grads`).
 */
export function retrievalLoss(g: GraphBuilder, x: string, { candEmb, targetQ, gamma, abstain }: LossInputs, grads: Grads): RetrievalLoss {
  const queryEmb = l2Normalize(g, x);
  const squeeze1 = (t: string) => g.op('Squeeze', [t, g.ints([1])]);
  const cosines = squeeze1(g.op('MatMul', [g.op('Unsqueeze', [queryEmb, g.ints([1])]), g.op('Transpose', [candEmb], { perm: [0, 2, 1] })]));
  const column = (t: string, from: number, to: number) => g.op('Slice', [t, g.ints([from]), g.ints([to]), g.ints([1])]);
  const scores = abstain ? g.op('Concat', [cosines, emptyPassageColumn(g, cosines)], { axis: 1 }) : cosines;
  const logProbs = g.op('LogSoftmax', [g.op('Div', [scores, gamma])], { axis: -1 });
  // Q·log Q with Q clamped away from 0 inside the log: an exact 0 term for Q = 0 instead of 0·(−∞) = NaN.
  const logQ = g.op('Log', [g.op('Max', [targetQ, g.float(1e-30)])]);
  const klPerQuery = g.op('ReduceSum', [g.op('Mul', [targetQ, g.op('Sub', [logQ, logProbs])]), g.ints([1])], { keepdims: 0 });
  const loss = g.op('ReduceMean', [klPerQuery], { axes: [0], keepdims: 0 });

  const batch = g.op('Cast', [g.op('Shape', [targetQ], { start: 0, end: 1 })], { to: 1 /* FLOAT */ });
  const qMass = g.op('ReduceSum', [targetQ, g.ints([1])], { keepdims: 1 });
  const dLogits = g.op('Div', [g.op('Sub', [g.op('Mul', [g.op('Exp', [logProbs]), qMass]), targetQ]), batch]);
  const dScores = g.op('Div', [dLogits, gamma]);
  if (abstain) grads.set(ABSTAIN_SCORE, g.op('Reshape', [g.op('ReduceSum', [column(dScores, -1, MAX_INT)], { keepdims: 0 }), g.ints([1])]));
  const dCosines = abstain ? column(dScores, 0, -1) : dScores;
  const dEmb = squeeze1(g.op('MatMul', [g.op('Unsqueeze', [dCosines, g.ints([1])]), candEmb]));
  return { queryEmb, logProbs, loss, dQuery: l2NormalizeBackward(g, x, queryEmb, dEmb) };
}

/** Slice's "to the end". */
const MAX_INT = 2 ** 31 - 1;

/** τ (`abstain.bias`, shape [1]) repeated for every query: [batch, 1]. */
function emptyPassageColumn(g: GraphBuilder, cosines: string): string {
  const shape = g.op('Concat', [g.op('Shape', [cosines], { start: 0, end: 1 }), g.ints([1])], { axis: 0 });
  return g.op('Expand', [g.weight(ABSTAIN_SCORE), shape]);
}
