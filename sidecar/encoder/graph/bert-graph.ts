import type { BertConfig, Pooling } from '../bert-config';
import type { Float32Tensor } from '../safetensors';
import { attentionBias, clsPool, embeddings, encoderLayer, l2Normalize, meanPool } from './bert-layers';
import { GraphBuilder } from './graph-builder';

export interface BertGraphOptions {
  pooling: Pooling;
  /**
   * 'sentence_embedding': pooled and L2-normalised [batch, hidden] (what the encoder runs);
   * 'last_hidden_state': the final hidden states [batch, seq, hidden] (the layout other runtimes expect).
   */
  output?: 'sentence_embedding' | 'last_hidden_state';
  weightsAsInputs?: boolean;
}

/** Builds the BERT sentence-encoder graph. Inputs: input_ids, attention_mask (int64 [batch, seq]). */
export function buildBertEncoder(cfg: BertConfig, weights: ReadonlyMap<string, Float32Tensor>, opts: BertGraphOptions): Uint8Array {
  const g = new GraphBuilder({ weights, weightsAsInputs: opts.weightsAsInputs });
  const ids = g.input('input_ids', 'int64', ['batch', 'seq']);
  const mask = g.input('attention_mask', 'int64', ['batch', 'seq']);
  const maskFloat = g.op('Cast', [mask], { to: 1 /* FLOAT */ });
  const bias = attentionBias(g, maskFloat);
  let h = embeddings(g, ids, cfg);
  for (let i = 0; i < cfg.numLayers; i++) h = encoderLayer(g, h, bias, i, cfg);
  if (opts.output === 'last_hidden_state') {
    g.output(h, 'last_hidden_state', 'float', ['batch', 'seq', cfg.hiddenSize]);
  } else {
    const pooled = opts.pooling === 'cls' ? clsPool(g, h) : meanPool(g, h, maskFloat);
    g.output(l2Normalize(g, pooled), 'sentence_embedding', 'float', ['batch', cfg.hiddenSize]);
  }
  return g.toBytes('bert_encoder');
}
