/**
 * REPLUG's ensemble: p(y | x) = Σ_d λ(d, x) · p(y | d ⊕ x), with λ the retriever's softmax over the top-k
 * passages. Computed in log space (log-sum-exp) because per-passage likelihoods of 128-token continuations
 * underflow float64 when exponentiated directly.
 */
export function ensembleLogProb(logProbs: readonly number[], similarities: readonly number[], temperature: number): number {
  if (logProbs.length === 0 || logProbs.length !== similarities.length) {
    throw new Error(`ensemble needs one similarity per passage score (got ${similarities.length} and ${logProbs.length})`);
  }
  const logWeights = logSoftmax(similarities.map((s) => s / temperature));
  return logSumExp(logProbs.map((lp, i) => lp + logWeights[i]));
}

export function logSoftmax(values: readonly number[]): number[] {
  const lse = logSumExp(values);
  return values.map((v) => v - lse);
}

export function logSumExp(values: readonly number[]): number {
  const max = Math.max(...values);
  if (max === -Infinity) return -Infinity;
  let sum = 0;
  for (const v of values) sum += Math.exp(v - max);
  return max + Math.log(sum);
}

/** Bits per byte of text of `bytes` UTF-8 bytes whose natural-log likelihood is `logProb`. */
export function bitsPerByte(logProb: number, bytes: number): number {
  return -logProb / Math.LN2 / bytes;
}

/**
 * log p(y | x) when the ensemble mixes next-token distributions (REPLUG decoding): Σ_t log Σ_d λ_d p(y_t | d ⊕ x ⊕ y_<t),
 * from each passage's per-token log-probs of y (which must tokenize y alike).
 */
export function tokenEnsembleLogProb(perToken: readonly (readonly number[])[], similarities: readonly number[], temperature: number): number {
  const n = perToken[0]?.length ?? 0;
  if (perToken.length !== similarities.length || perToken.some((p) => p.length !== n)) {
    throw new Error('token-level ensemble needs one per-token list per passage, all of the same length');
  }
  const logWeights = logSoftmax(similarities.map((s) => s / temperature));
  let total = 0;
  for (let t = 0; t < n; t++) total += logSumExp(perToken.map((p, d) => p[t] + logWeights[d]));
  return total;
}
