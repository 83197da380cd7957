import type { Passage } from '../corpus/passage';
import type { BeirDataset } from './beir-dataset';
import { ndcgAt, pairedDifference, recallAt, reciprocalRank, type Relevance } from './ranking-metrics';

/** Documents ranked per query: recall@100 and MRR look this deep. */
export const BEIR_DEPTH = 100;

/** CodeRAG-Bench's and BEIR's headline metrics (nDCG@10 and recall at 1, 5, 10, 100) and MRR over the ranked depth. */
const METRICS: { name: string; of: (docs: string[], qrels: Relevance) => number }[] = [
  { name: 'ndcg@10', of: (docs, qrels) => ndcgAt(docs, qrels, 10) },
  ...[1, 5, 10, 100].map((k) => ({ name: `recall@${k}`, of: (docs: string[], qrels: Relevance) => recallAt(docs, qrels, k) })),
  { name: `mrr@${BEIR_DEPTH}`, of: (docs, qrels) => reciprocalRank(docs, qrels) },
];
export const BEIR_METRICS = METRICS.map((m) => m.name);

/** A retriever under evaluation: its top `k` passages of the benchmark's corpus for a query, best first. */
export interface BeirSystem {
  name: string;
  search(query: string, k: number): Promise<Passage[]>;
}

export interface BeirReport {
  dataset: string;
  split: string;
  queries: number;
  /** Judged documents that the index does not hold (they count as never retrieved). */
  judgedNotIndexed: number;
  /** Mean of each metric per system, in the order the systems were given. */
  systems: { name: string; metrics: Record<string, number> }[];
  /** Paired per-query differences of each metric, for `tuned` − `base` when both are evaluated. */
  difference?: { of: string; minus: string; metrics: Record<string, { mean: number; stdErr: number }> };
}

/**
 * Scores each system on the dataset's judged queries, as BEIR and CodeRAG-Bench do: documents are ranked by their
 * best passage (a document longer than the passage budget is split, and its pieces share its id), a document whose
 * id is the query's own is dropped (BEIR's ignore_identical_ids), and metrics are averaged over queries.
 */
export async function evaluateBeir(
  dataset: BeirDataset,
  indexedDocs: ReadonlySet<string>,
  systems: BeirSystem[],
  onProgress?: (done: number, total: number) => void,
): Promise<BeirReport> {
  const perQuery = systems.map(() => METRICS.map(() => [] as number[]));
  const total = dataset.queries.length * systems.length;
  let done = 0;
  for (const [s, system] of systems.entries()) {
    for (const query of dataset.queries) {
      const docs = await rankDocuments(system, query.text, query.id);
      METRICS.forEach((metric, m) => perQuery[s][m].push(metric.of(docs, query.qrels)));
      onProgress?.(++done, total);
    }
  }
  const judged = new Set(dataset.queries.flatMap((q) => [...q.qrels].filter(([, grade]) => grade > 0).map(([id]) => id)));
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length);
  const report: BeirReport = {
    dataset: dataset.dir,
    split: dataset.split,
    queries: dataset.queries.length,
    judgedNotIndexed: [...judged].filter((id) => !indexedDocs.has(id)).length,
    systems: systems.map((system, s) => ({ name: system.name, metrics: Object.fromEntries(METRICS.map((metric, m) => [metric.name, mean(perQuery[s][m])])) })),
  };
  const base = systems.findIndex((s) => s.name === 'base');
  const tuned = systems.findIndex((s) => s.name === 'tuned');
  if (base >= 0 && tuned >= 0) {
    report.difference = {
      of: 'tuned',
      minus: 'base',
      metrics: Object.fromEntries(METRICS.map((metric, m) => [metric.name, pairedDifference(perQuery[tuned][m], perQuery[base][m])])),
    };
  }
  return report;
}

/** The query's top BEIR_DEPTH distinct documents, asking for more passages while split documents fill the list. */
async function rankDocuments(system: BeirSystem, query: string, queryId: string): Promise<string[]> {
  for (let k = 2 * BEIR_DEPTH; ; k *= 4) {
    const passages = await system.search(query, k);
    const docs: string[] = [];
    const seen = new Set<string>([queryId]);
    for (const passage of passages) {
      const doc = passage.docId;
      if (doc === undefined || seen.has(doc)) continue;
      seen.add(doc);
      docs.push(doc);
      if (docs.length === BEIR_DEPTH) return docs;
    }
    if (passages.length < k) return docs;
  }
}
