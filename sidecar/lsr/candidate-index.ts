import type { Passage } from '../corpus/passage';
import { DenseIndex } from '../index/dense-index';
import type { VectorHit, WorkspaceIndex } from '../index/workspace-index';

/** Where a training step finds a query's top-k passages and their (fixed) embeddings. */
export interface CandidateIndex {
  search(vector: Float32Array, k: number, exclude: (passage: Passage) => boolean): VectorHit[];
}

/** query-tower mode: the workspace index's document vectors stay valid for the whole run. */
export class StoredCandidates implements CandidateIndex {
  constructor(private readonly index: WorkspaceIndex) {}

  search(vector: Float32Array, k: number, exclude: (passage: Passage) => boolean): VectorHit[] {
    return this.index.searchVector(vector, k, exclude);
  }
}

/**
 * shared mode (REPLUG): document vectors re-embedded with the encoder being trained, held in memory beside the
 * stored index (which keeps the base vectors the editor searches with until the run ends).
 */
export class RefreshedCandidates implements CandidateIndex {
  private constructor(
    private readonly dense: DenseIndex,
    private readonly passages: Passage[],
  ) {}

  static build(passages: Passage[], vectors: Float32Array[]): RefreshedCandidates {
    const dense = DenseIndex.create(vectors[0]?.length ?? 1);
    dense.reserve(passages.length);
    vectors.forEach((v, label) => dense.add(label, v));
    return new RefreshedCandidates(dense, passages);
  }

  search(vector: Float32Array, k: number, exclude: (passage: Passage) => boolean): VectorHit[] {
    return this.dense
      .search(vector, k, (label) => !exclude(this.passages[label]))
      .map((hit) => ({ passage: this.passages[hit.label], similarity: hit.similarity, vector: this.dense.vector(hit.label) }));
  }
}
