import type { GraphBuilder } from '../../encoder/graph/graph-builder';
import { l2Normalize } from '../../encoder/graph/bert-layers';
import { l2NormalizeBackward } from './backward-ops';

/** The LSR inputs every training graph shares (candidates and teacher distribution are constants). */
export interface LossInputs {
  /** L2-normalised candidate passage embeddings, float [batch, k, hidden]. */
  candEmb: string;
  /** LM teacher distribution Q over the k candidates, float [batch, k] (rows sum to 1). */
  targetQ: string;
  /** Temperature γ, float scalar. */
  gamma: string;
}

export function lossInputs(g: GraphBuilder, hidden: number): LossInputs {
  return {
    candEmb: g.input('cand_emb', 'float', ['batch', 'k', hidden]),
    targetQ: g.input('target_q', 'float', ['batch', 'k']),
    gamma: g.input('gamma', 'float', []),
  };
}

export interface RetrievalLoss {
  /** L2-normalised query embeddings [batch, hidden]. */
  queryEmb: string;
  /** log P_R [batch, k]. */
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
 */
export function retrievalLoss(g: GraphBuilder, x: string, { candEmb, targetQ, gamma }: LossInputs): RetrievalLoss {
  const queryEmb = l2Normalize(g, x);
  const squeeze1 = (t: string) => g.op('Squeeze', [t, g.ints([1])]);
  const scores = squeeze1(g.op('MatMul', [g.op('Unsqueeze', [queryEmb, g.ints([1])]), g.op('Transpose', [candEmb], { perm: [0, 2, 1] })]));
  const logProbs = g.op('LogSoftmax', [g.op('Div', [scores, gamma])], { axis: -1 });
  // Q·log Q with Q clamped away from 0 inside the log: an exact 0 term for Q = 0 instead of 0·(−∞) = NaN.
  const logQ = g.op('Log', [g.op('Max', [targetQ, g.float(1e-30)])]);
  const klPerQuery = g.op('ReduceSum', [g.op('Mul', [targetQ, g.op('Sub', [logQ, logProbs])]), g.ints([1])], { keepdims: 0 });
  const loss = g.op('ReduceMean', [klPerQuery], { axes: [0], keepdims: 0 });

  const batch = g.op('Cast', [g.op('Shape', [targetQ], { start: 0, end: 1 })], { to: 1 /* FLOAT */ });
  const qMass = g.op('ReduceSum', [targetQ, g.ints([1])], { keepdims: 1 });
  const dLogits = g.op('Div', [g.op('Sub', [g.op('Mul', [g.op('Exp', [logProbs]), qMass]), targetQ]), batch]);
  const dScores = g.op('Div', [dLogits, gamma]);
  const dEmb = squeeze1(g.op('MatMul', [g.op('Unsqueeze', [dScores, g.ints([1])]), candEmb]));
  return { queryEmb, logProbs, loss, dQuery: l2NormalizeBackward(g, x, queryEmb, dEmb) };
}
