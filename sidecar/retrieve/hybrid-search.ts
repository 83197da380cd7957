import { reciprocalRankFusion, type Ranked } from './rank-fusion';

export type SearchMode = 'hybrid' | 'dense' | 'lexical';

/** The two first-stage retrievers over one passage set, by passage id (filters already applied). */
export interface FirstStage {
  lexical(query: string, n: number): Ranked[];
  dense(query: string, n: number): Promise<Ranked[]>;
}

export interface ScoredId {
  id: string;
  score: number;
  denseScore?: number;
  lexicalScore?: number;
}

/** Candidates each side contributes to hybrid fusion: deeper than k, so a passage ranked well by one side counts. */
const fusionPool = (k: number) => Math.max(3 * k, 30);

/** Top-k by BM25, by cosine, or by reciprocal-rank fusion of both. */
export async function hybridSearch(query: string, k: number, mode: SearchMode, stage: FirstStage): Promise<ScoredId[]> {
  if (mode === 'lexical') return stage.lexical(query, k).map((h) => ({ ...h, lexicalScore: h.score }));
  if (mode === 'dense') return (await stage.dense(query, k)).map((h) => ({ ...h, denseScore: h.score }));
  const pool = fusionPool(k);
  const dense = await stage.dense(query, pool);
  const lexical = stage.lexical(query, pool);
  return reciprocalRankFusion([dense, lexical], k).map((f) => ({ id: f.id, score: f.score, denseScore: f.parts[0], lexicalScore: f.parts[1] }));
}
