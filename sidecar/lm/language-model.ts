/**
 * What the OpenAI-compatible test server needs from a language model. Two implementations exist: the llama2.c
 * checkpoint runner (a real tiny model) and the deterministic copy-LM test fixture. Scoring may answer
 * asynchronously: the server issues every prompt of a request (and of concurrent requests) at once, so a model can
 * batch them.
 */
export interface LanguageModel {
  /** Model id reported by /v1/models and checked against each request's `model`. */
  readonly name: string;
  /** Token that ends generation, when the model has one. */
  readonly eos?: number;
  /** Longest sequence (prompt + generated tokens) the model accepts. */
  readonly maxContext: number;
  /** Token ids of `text`; with `addSpecialTokens`, a BOS token comes first when the model has one. */
  tokenize(text: string, addSpecialTokens: boolean): number[];
  /**
   * Text of a token sequence (special tokens contribute nothing; inverse of tokenize) and the UTF-16 offset in
   * that text where each token starts; the server reports these as `text_offset`.
   */
  decode(ids: number[]): { text: string; offsets: number[] };
  /**
   * Log-softmax of the next-token distribution after each prefix: result[i] scores token i + 1 given ids[0..i].
   * Computed in one pass because scoring a prompt needs every position.
   */
  logProbs(ids: number[]): Float32Array[] | Promise<Float32Array[]>;
  /**
   * Optional fast path for scoring requests (echo with logprobs 0 or 1, nothing generated): per position i, the
   * log-prob of ids[i + 1] and the most likely next token, without materialising a distribution per position.
   */
  scoreTokens?(ids: number[]): TokenScores | Promise<TokenScores>;
  /**
   * Optional fast path for generation: the distribution after the whole of `ids` (logProbs(ids) at its last
   * position). A model may keep what it computed for `ids`, so the next call, one token longer, costs one position.
   */
  nextLogProbs?(ids: number[]): Float32Array | Promise<Float32Array>;
}

/** Entry i describes the prediction after ids[0..i] (the last entry predicts past the end: `next` is -1 there). */
export interface TokenScores {
  /** log P(ids[i + 1] | ids[0..i]); NaN for the last position. */
  next: Float32Array;
  /** Most likely token after ids[0..i] (lowest id among ties, as a dense argmax) and its log-prob. */
  best: Int32Array;
  bestLogProb: Float32Array;
}
