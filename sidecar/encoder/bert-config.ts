/** The parts of a Hugging Face BERT `config.json` the graph needs, in our own names. */
export interface BertConfig {
  vocabSize: number;
  hiddenSize: number;
  numLayers: number;
  numHeads: number;
  intermediateSize: number;
  maxPositions: number;
  typeVocabSize: number;
  layerNormEps: number;
}

export type Pooling = 'mean' | 'cls';
