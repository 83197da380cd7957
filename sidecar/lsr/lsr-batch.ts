/**
 * Packs and validates one LSR batch into the flat tensors the training graphs take. Rows are padded to the
 * batch's longest query; the attention mask hides the padding.
 */

export interface LsrTargets {
  /** Per query, its k candidate passage embeddings (L2-normalised, `dim` floats each; same k for every query). */
  candidates: Float32Array[][];
  /** Per query, the LM teacher distribution Q over its k candidates (non-negative, summing to 1); with abstention,
   *  over k + 1, the empty passage last. */
  target: ArrayLike<number>[];
}

export interface PackedTokens {
  inputIds: BigInt64Array;
  mask: BigInt64Array;
  dims: [number, number];
}

export interface PackedTargets {
  candEmb: Float32Array;
  targetQ: Float32Array;
  k: number;
  /** Columns of targetQ: k, or k + 1 with the empty passage. */
  columns: number;
}

/** Tokenised queries (special tokens included) → int64 ids and mask [batch, longest]. */
export function packTokens(ids: number[][], vocabSize: number, maxPositions: number): PackedTokens {
  if (ids.length === 0) throw new Error('empty batch: pass at least one query');
  const seq = Math.max(...ids.map((row) => row.length));
  if (seq > maxPositions) throw new Error(`a query has ${seq} tokens but the model has ${maxPositions} positions: truncate queries with the encoder's tokenizer`);
  const inputIds = new BigInt64Array(ids.length * seq);
  const mask = new BigInt64Array(ids.length * seq);
  ids.forEach((row, r) => {
    if (row.length === 0) throw new Error(`query ${r} has no tokens`);
    row.forEach((id, c) => {
      if (!Number.isInteger(id) || id < 0 || id >= vocabSize) throw new Error(`query ${r} has token id ${id}, outside the vocabulary 0..${vocabSize - 1}`);
      inputIds[r * seq + c] = BigInt(id);
      mask[r * seq + c] = 1n;
    });
  });
  return { inputIds, mask, dims: [ids.length, seq] };
}

/**
 * Candidates → [batch, k, dim], Q → [batch, k] (with `abstain`, [batch, k + 1]); rejects ragged k, wrong widths and
 * Q that is not a distribution.
 */
export function packTargets({ candidates, target }: LsrTargets, batch: number, dim: number, abstain = false): PackedTargets {
  if (candidates.length !== batch || target.length !== batch) {
    throw new Error(`batch has ${batch} queries but ${candidates.length} candidate lists and ${target.length} target rows`);
  }
  const k = candidates[0]?.length ?? 0;
  if (k < 2) throw new Error(`each query needs at least 2 candidates (got ${k}): one candidate gives no training signal`);
  const columns = abstain ? k + 1 : k;
  const candEmb = new Float32Array(batch * k * dim);
  const targetQ = new Float32Array(batch * columns);
  for (let b = 0; b < batch; b++) {
    if (candidates[b].length !== k || target[b].length !== columns) {
      const needs = abstain ? `k = ${k} candidates and k + 1 = ${columns} target values (the empty passage last)` : `k = ${k} of both`;
      throw new Error(`query ${b} has ${candidates[b].length} candidates and ${target[b].length} target values; every query needs ${needs}`);
    }
    candidates[b].forEach((e, i) => {
      if (e.length !== dim) throw new Error(`candidate ${i} of query ${b} has ${e.length} dimensions; the encoder has ${dim}`);
      candEmb.set(e, (b * k + i) * dim);
    });
    let mass = 0;
    for (let i = 0; i < columns; i++) {
      const q = target[b][i];
      if (!(q >= 0 && Number.isFinite(q))) throw new Error(`target ${q} for candidate ${i} of query ${b} is not a probability`);
      targetQ[b * columns + i] = q;
      mass += q;
    }
    if (Math.abs(mass - 1) > 1e-3) throw new Error(`targets of query ${b} sum to ${mass}, not 1: normalise the LM scores (softmax over the k candidates) first`);
  }
  return { candEmb, targetQ, k, columns };
}
