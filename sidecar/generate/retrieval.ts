import type { SearchHit, WorkspaceIndex } from '../index/workspace-index';

/** Where a prompt comes from: passages of `path` overlapping the 1-based inclusive lines are never retrieved for it. */
export interface SourceSpan {
  path: string;
  /** Without lines, the whole file is the prompt's span. */
  startLine?: number;
  endLine?: number;
}

/** A retrieved passage with the similarity its ensemble weight softmax(similarity/γ) is computed from. */
export interface RetrievedPassage {
  id: string;
  path: string;
  startLine: number;
  endLine: number;
  text: string;
  similarity: number;
}

/** Where the generator finds passages for a prompt's context. */
export interface PassageRetriever {
  retrieve(query: string, k: number, exclude?: SourceSpan): Promise<RetrievedPassage[]>;
  /** Whether the retriever, trained with abstention, judges that no passage it would retrieve helps (absent: never). */
  abstains?(query: string, exclude?: SourceSpan): Promise<boolean>;
}

export function overlaps(span: SourceSpan): (p: { path: string; startLine: number; endLine: number }) => boolean {
  const { path, startLine = 1, endLine = Number.MAX_SAFE_INTEGER } = span;
  return (p) => p.path === path && p.startLine <= endLine && p.endLine >= startLine;
}

/**
 * Similarities on the scale the ensemble weights expect: cosines as they are (the scale LSR trains softmax(cos/γ)
 * on); BM25 scores, which are unbounded, divided by the best one so that γ means the same for both.
 */
export function asSimilarities(hits: readonly Omit<RetrievedPassage, 'similarity'>[], scores: readonly number[], dense: boolean): RetrievedPassage[] {
  const best = Math.max(...scores, Number.MIN_VALUE);
  return hits.map((hit, i) => ({ ...hit, similarity: dense ? scores[i] : scores[i] / best }));
}

/**
 * The index's retriever for generation: dense (cosine, with the tuned query tower when the index was opened with
 * one) when the index has vectors, BM25 otherwise. Hybrid search is not used: its fused rank scores are no
 * similarity the ensemble weights could be taken from. `current` names the index at each call (a server reopens it
 * when another process updated it).
 */
export function indexRetriever(current: () => WorkspaceIndex): PassageRetriever {
  return {
    async retrieve(query, k, exclude) {
      const index = current();
      const dense = index.status().dense;
      const hits: SearchHit[] = await index.search(query, { k, mode: dense ? 'dense' : 'lexical', exclude: exclude && overlaps(exclude) });
      return asSimilarities(
        hits.map(({ passage: { id, path, startLine, endLine, text } }) => ({ id, path, startLine, endLine, text })),
        hits.map((h) => h.score),
        dense,
      );
    },
  };
}
