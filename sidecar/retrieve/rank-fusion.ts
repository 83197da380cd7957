/**
 * Reciprocal-rank fusion (Cormack et al., 2009): score = Σ 1 / (K + rank) over the lists a document appears in.
 * Ranks rather than raw scores, because BM25 scores and cosine similarities live on unrelated scales.
 */
const K = 60;

export interface Ranked {
  id: string;
  score: number;
}

export interface Fused {
  id: string;
  score: number;
  /** The document's score in each input list, by list position; undefined where it was absent. */
  parts: (number | undefined)[];
}

export function reciprocalRankFusion(lists: Ranked[][], k: number): Fused[] {
  const fused = new Map<string, Fused>();
  lists.forEach((list, listIndex) => {
    list.forEach((item, rank) => {
      let entry = fused.get(item.id);
      if (!entry) {
        entry = { id: item.id, score: 0, parts: new Array<number | undefined>(lists.length).fill(undefined) };
        fused.set(item.id, entry);
      }
      entry.score += 1 / (K + rank + 1);
      entry.parts[listIndex] = item.score;
    });
  });
  return [...fused.values()].sort((a, b) => b.score - a.score || a.id.localeCompare(b.id)).slice(0, k);
}
