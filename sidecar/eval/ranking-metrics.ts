/**
 * Ranking metrics over one ranked list of ids. Averaging over queries is the caller's job.
 *
 * Relevance is binary (a set of relevant ids, gain 1 each) or graded (id → grade, as in TREC/BEIR qrels). Graded
 * nDCG follows trec_eval's ndcg_cut, which BEIR reports through pytrec_eval: the gain of a document is its grade
 * (linear, not 2^grade − 1), discounted by log2(rank + 1), over the ideal ordering of all judged grades. Recall and
 * reciprocal rank count a document as relevant when its grade is above 0 (trec_eval's relevance level 1 on integer
 * grades); grades of 0 and below gain nothing.
 */
export type Relevance = ReadonlySet<string> | ReadonlyMap<string, number>;

function gain(relevance: Relevance, id: string): number {
  if (relevance instanceof Map) return Math.max(0, relevance.get(id) ?? 0);
  return relevance.has(id) ? 1 : 0;
}

/** Gains of the relevant documents, largest first: the ideal ranking. */
function idealGains(relevance: Relevance): number[] {
  if (relevance instanceof Map) return [...relevance.values()].filter((g) => g > 0).sort((a, b) => b - a);
  return new Array<number>(relevance.size).fill(1);
}

function relevantCount(relevance: Relevance): number {
  return relevance instanceof Map ? idealGains(relevance).length : relevance.size;
}

export function ndcgAt(ranked: readonly string[], relevance: Relevance, k: number): number {
  const ideal = idealGains(relevance)
    .slice(0, k)
    .reduce((sum, g, i) => sum + g / Math.log2(i + 2), 0);
  if (ideal === 0) return 0;
  const dcg = ranked.slice(0, k).reduce((sum, id, i) => sum + gain(relevance, id) / Math.log2(i + 2), 0);
  return dcg / ideal;
}

export function recallAt(ranked: readonly string[], relevance: Relevance, k: number): number {
  const relevant = relevantCount(relevance);
  if (relevant === 0) return 0;
  return ranked.slice(0, k).filter((id) => gain(relevance, id) > 0).length / relevant;
}

/** 1 / rank of the first relevant id; 0 when none is ranked. */
export function reciprocalRank(ranked: readonly string[], relevance: Relevance): number {
  const i = ranked.findIndex((id) => gain(relevance, id) > 0);
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
