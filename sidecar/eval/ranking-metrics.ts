/**
 * Binary-relevance ranking metrics over one ranked list of ids. Averaging over queries is the caller's job.
 * nDCG uses the standard log2(rank + 1) discount and the ideal ordering of the relevant set.
 */
export function ndcgAt(ranked: readonly string[], relevant: ReadonlySet<string>, k: number): number {
  if (relevant.size === 0) return 0;
  let dcg = 0;
  ranked.slice(0, k).forEach((id, i) => {
    if (relevant.has(id)) dcg += 1 / Math.log2(i + 2);
  });
  let ideal = 0;
  for (let i = 0; i < Math.min(k, relevant.size); i++) ideal += 1 / Math.log2(i + 2);
  return dcg / ideal;
}

export function recallAt(ranked: readonly string[], relevant: ReadonlySet<string>, k: number): number {
  if (relevant.size === 0) return 0;
  return ranked.slice(0, k).filter((id) => relevant.has(id)).length / relevant.size;
}

/** 1 / rank of the first relevant id; 0 when none is ranked. */
export function reciprocalRank(ranked: readonly string[], relevant: ReadonlySet<string>): number {
  const i = ranked.findIndex((id) => relevant.has(id));
  return i < 0 ? 0 : 1 / (i + 1);
}

/**
 * Mean of the per-query differences a[i] - b[i] and its standard error (sample sd / sqrt(n)): two retrievers judged
 * on the same queries differ by much less noise than their separate means suggest.
 */
export function pairedDifference(a: readonly number[], b: readonly number[]): { mean: number; stdErr: number } {
  if (a.length !== b.length) throw new Error(`paired metrics need equal lengths (${a.length} vs ${b.length})`);
  const n = a.length;
  if (n === 0) return { mean: 0, stdErr: 0 };
  const d = a.map((x, i) => x - b[i]);
  const mean = d.reduce((s, x) => s + x, 0) / n;
  const variance = n > 1 ? d.reduce((s, x) => s + (x - mean) ** 2, 0) / (n - 1) : 0;
  return { mean, stdErr: Math.sqrt(variance / n) };
}
