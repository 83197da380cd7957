import type { BertConfig, Pooling } from '../../encoder/bert-config';
import {
  attentionBias, attentionBlockTrace, clsPool, embeddingsTrace, feedForwardTrace, meanPool, type AttentionTrace, type FeedForwardTrace,
} from '../../encoder/graph/bert-layers';
import { GraphBuilder } from '../../encoder/graph/graph-builder';
import type { Float32Tensor } from '../../encoder/safetensors';
import { geluBackward, layerNormBackward, linearBackward, softmaxBackward, type Grads } from './backward-ops';
import { lossInputs, retrievalLoss } from './retrieval-loss';
import { emitTrainOutputs, type TrainGraph } from './train-outputs';

export interface BertTrainGraphOptions {
  pooling: Pooling;
  /** No gradient for the word-embedding table (default true: it is most of the parameters and sparse). */
  freezeWordEmbeddings?: boolean;
  /** Freeze layers 0..n−1 and, below them, the embeddings: their gradients are not computed at all (default 0). */
  freezeLayers?: number;
  /** An empty passage among the candidates, scored by the weight `abstain.bias` (which `weights` must then hold). */
  abstain?: boolean;
}

/**
 * The LSR training-step graph for a BERT sentence encoder. Inputs: input_ids, attention_mask (int64 [batch, seq]),
 * cand_emb, target_q, gamma and every weight (with `abstain`, the abstention score too). Outputs: loss, query_emb, log_probs and grad.<weight> per trainable
 * weight. The forward pass is the inference encoder's (same layer functions); the backward is written out below.
 */
export function buildBertTrainGraph(cfg: BertConfig, weights: ReadonlyMap<string, Float32Tensor>, opts: BertTrainGraphOptions): TrainGraph {
  const { freezeWordEmbeddings = true, freezeLayers = 0 } = opts;
  if (!Number.isInteger(freezeLayers) || freezeLayers < 0 || freezeLayers >= cfg.numLayers) {
    throw new Error(`freezeLayers must be an integer in 0..${cfg.numLayers - 1} (the model has ${cfg.numLayers} layers), got ${freezeLayers}`);
  }
  const H = cfg.hiddenSize;
  const F = cfg.intermediateSize;
  const g = new GraphBuilder({ weights, weightsAsInputs: true });
  const ids = g.input('input_ids', 'int64', ['batch', 'seq']);
  const mask = g.input('attention_mask', 'int64', ['batch', 'seq']);
  const loss = lossInputs(g, H, opts.abstain);
  const maskFloat = g.op('Cast', [mask], { to: 1 /* FLOAT */ });
  const bias = attentionBias(g, maskFloat);

  const emb = embeddingsTrace(g, ids, cfg);
  const layers: Array<{ x: string; attn: AttentionTrace; ffn: FeedForwardTrace }> = [];
  let h = emb.out;
  for (let i = 0; i < cfg.numLayers; i++) {
    const prefix = `encoder.layer.${i}`;
    const attn = attentionBlockTrace(g, h, bias, `${prefix}.attention`, cfg);
    const ffn = feedForwardTrace(g, attn.out, prefix, cfg);
    layers.push({ x: h, attn, ffn });
    h = ffn.out;
  }
  const pooled = opts.pooling === 'cls' ? clsPool(g, h) : meanPool(g, h, maskFloat);
  const grads: Grads = new Map();
  const out = retrievalLoss(g, pooled, loss, grads);

  let dh: string | undefined = opts.pooling === 'cls' ? clsPoolBackward(g, ids, out.dQuery) : meanPoolBackward(g, maskFloat, out.dQuery);
  for (let i = cfg.numLayers - 1; i >= freezeLayers; i--) {
    const prefix = `encoder.layer.${i}`;
    const { x, attn, ffn } = layers[i];
    // Feed-forward: LayerNorm(o + x) with o = W2·gelu(W1·x).
    const dResidual = layerNormBackward(g, grads, ffn.residual, dh!, `${prefix}.output.LayerNorm`, H, cfg.layerNormEps);
    const dHidden = linearBackward(g, grads, ffn.hidden, dResidual, `${prefix}.output.dense`, [H, F], true)!;
    const dPre = geluBackward(g, ffn.preGelu, dHidden);
    const dAttnOut = g.op('Add', [linearBackward(g, grads, attn.out, dPre, `${prefix}.intermediate.dense`, [F, H], true)!, dResidual]);
    dh = attentionBackward(g, grads, x, attn, dAttnOut, `${prefix}.attention`, cfg, i > freezeLayers || freezeLayers === 0);
  }
  if (freezeLayers === 0) embeddingsBackward(g, grads, ids, emb.sum, dh!, cfg, freezeWordEmbeddings);

  return emitTrainOutputs(g, out, grads, weights, H, 'bert_lsr_train_step');
}

/** Self-attention block backward; returns ∂/∂x (residual included) unless `needDx` is false. */
function attentionBackward(
  g: GraphBuilder, grads: Grads, x: string, t: AttentionTrace, dy: string, prefix: string, cfg: BertConfig, needDx: boolean,
): string | undefined {
  const H = cfg.hiddenSize;
  const headDim = H / cfg.numHeads;
  const scale = g.float(1 / Math.sqrt(headDim));
  const swapLast = (v: string) => g.op('Transpose', [v], { perm: [0, 1, 3, 2] });
  const mergeHeads = (v: string) => g.op('Reshape', [g.op('Transpose', [v], { perm: [0, 2, 1, 3] }), g.ints([0, 0, H])]);

  const dResidual = layerNormBackward(g, grads, t.residual, dy, `${prefix}.output.LayerNorm`, H, cfg.layerNormEps);
  const dMerged = linearBackward(g, grads, t.merged, dResidual, `${prefix}.output.dense`, [H, H], true)!;
  const dContext = g.op('Transpose', [g.op('Reshape', [dMerged, g.ints([0, 0, cfg.numHeads, headDim])])], { perm: [0, 2, 1, 3] });
  // context = P·V: dP = dC·Vᵀ, dV = Pᵀ·dC. scores = q·kᵀ·scale + mask bias: dq = dS·k·scale, dk = dSᵀ·q·scale.
  const dProbs = g.op('MatMul', [dContext, swapLast(t.v)]);
  const dV = g.op('MatMul', [swapLast(t.probs), dContext]);
  const dScores = g.op('Mul', [softmaxBackward(g, t.probs, dProbs), scale]);
  const dQ = g.op('MatMul', [dScores, swapLast(t.kT)]);
  const dK = g.op('MatMul', [swapLast(dScores), t.q]);
  const dxs = (['query', 'key', 'value'] as const).map((name, i) =>
    linearBackward(g, grads, x, mergeHeads([dQ, dK, dV][i]), `${prefix}.self.${name}`, [H, H], needDx),
  );
  if (!needDx) return undefined;
  return g.op('Add', [g.op('Add', [g.op('Add', [dxs[0]!, dxs[1]!]), dxs[2]!]), dResidual]);
}

/** Mean pooling over the mask: every unmasked token gets ∂/∂pooled / count. */
function meanPoolBackward(g: GraphBuilder, maskFloat: string, dPooled: string): string {
  const mask3 = g.op('Unsqueeze', [maskFloat, g.ints([2])]);
  const count = g.op('ReduceSum', [mask3, g.ints([1])], { keepdims: 0 });
  const perToken = g.op('Div', [dPooled, g.op('Max', [count, g.float(1e-9)])]);
  return g.op('Mul', [g.op('Unsqueeze', [perToken, g.ints([1])]), mask3]);
}

/** CLS pooling: only token 0 gets the gradient. */
function clsPoolBackward(g: GraphBuilder, ids: string, dPooled: string): string {
  const seqLen = g.op('Gather', [g.op('Shape', [ids]), g.ints([1], true)]);
  const isFirst = g.op('Equal', [g.op('Range', [g.ints([0], true), seqLen, g.ints([1], true)]), g.ints([0], true)]);
  const firstToken = g.op('Reshape', [g.op('Cast', [isFirst], { to: 1 /* FLOAT */ }), g.ints([1, -1, 1])]);
  return g.op('Mul', [g.op('Unsqueeze', [dPooled, g.ints([1])]), firstToken]);
}

/**
 * Embedding LayerNorm, then the tables: positions 0..seq−1 get Σ_batch (padded to the table's rows), token type 0
 * gets Σ_batch,seq, and each word row the sum over its occurrences (ScatterND with add: ids repeat).
 */
function embeddingsBackward(
  g: GraphBuilder, grads: Grads, ids: string, sum: string, dy: string, cfg: BertConfig, freezeWords: boolean,
): void {
  const H = cfg.hiddenSize;
  const dSum = layerNormBackward(g, grads, sum, dy, 'embeddings.LayerNorm', H, cfg.layerNormEps);
  const seqLen = g.op('Shape', [ids], { start: 1, end: 2 });
  const posPads = g.op('Concat', [g.ints([0, 0]), g.op('Sub', [g.ints([cfg.maxPositions]), seqLen]), g.ints([0])], { axis: 0 });
  const dPositions = g.op('ReduceSum', [dSum, g.ints([0])], { keepdims: 0 });
  grads.set('embeddings.position_embeddings.weight', g.op('Pad', [dPositions, posPads]));
  const dType0 = g.op('ReduceSum', [dSum, g.ints([0, 1])], { keepdims: 1 });
  const dType0Row = g.op('Reshape', [dType0, g.ints([1, H])]);
  grads.set(
    'embeddings.token_type_embeddings.weight',
    cfg.typeVocabSize === 1 ? dType0Row : g.op('Pad', [dType0Row, g.ints([0, 0, cfg.typeVocabSize - 1, 0])]),
  );
  if (!freezeWords) {
    const zeros = g.op('ConstantOfShape', [g.ints([cfg.vocabSize, H])]);
    const index = g.op('Unsqueeze', [ids, g.ints([2])]);
    grads.set('embeddings.word_embeddings.weight', g.op('ScatterND', [zeros, index, dSum], { reduction: 'add' }));
  }
}
