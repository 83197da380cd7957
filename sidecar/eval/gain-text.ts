import type { EvalReport } from './evaluate';

/** One line per tuned retriever: its nDCG gain over the first retriever, with the paired standard error. */
export function ndcgGainLines(r: EvalReport): string[] {
  const first = r.retrievers[0];
  return r.retrievers.flatMap((s) => {
    if (!s.ndcgGain) return [];
    const sign = s.ndcgGain.mean >= 0 ? '+' : '−';
    return [`${s.name} − ${first.name} nDCG@${r.k}: ${sign}${Math.abs(s.ndcgGain.mean).toFixed(3)} ± ${s.ndcgGain.stdErr.toFixed(3)} (standard error over the same queries)`];
  });
}
