import type { Passage } from '../corpus/passage';
import type { Encoder } from '../encoder/encoder';
import { QUERY_TOWER_PRECISION, type PrecisionChoice } from '../encoder/precision';
import { stampPrecision, type EncoderStamp } from '../index/manifest';
import type { VectorHit, WorkspaceIndex } from '../index/workspace-index';
import type { Scorer } from '../lm/scorer';
import { RefreshedCandidates, StoredCandidates, type CandidateIndex } from '../lsr/candidate-index';
import { DEFAULT_LSR_SETTINGS, isQueryTowerFor, ownSource } from '../lsr/lsr-trainer';
import type { TrainingQuery } from '../lsr/training-queries';
import type { AbstentionHead } from '../retrieve/abstention';
import { bitsPerByte, ensembleLogProb, logSoftmax } from './ensemble';
import { ndcgAt, pairedDifference, recallAt, reciprocalRank } from './ranking-metrics';

export interface Retriever {
  name: string;
  encoder: Encoder;
  /** Model folder, to tell a query tower (searches the stored vectors) from a shared encoder (re-embeds documents). */
  model: string;
  /** The model's empty-passage score, when it was trained with --abstain. */
  abstention?: AbstentionHead;
}

export interface EvalOptions {
  index: WorkspaceIndex;
  retrievers: Retriever[];
  scorer: Scorer;
  queries: TrainingQuery[];
  /** Cut-off of the ranking metrics (nDCG@k, recall@k); each retriever adds its top 2k to the teacher's pool. */
  k: number;
  /** Passages in REPLUG's ensemble. */
  ensembleK: number;
  /** Temperature of the ensemble weights softmax(cos/γ), as in training. */
  gamma: number;
  /** LM temperature β of the held-out loss's Q = softmax(log P_LM/β) (default: training's). */
  beta?: number;
  onProgress?: (done: number, total: number) => void;
  /** Each query's outcome, for paired comparisons beyond the report's. */
  onQuery?: (outcome: QueryOutcome) => void;
}

/** What one held-out query gave each retriever (in the order of EvalOptions.retrievers). */
export interface QueryOutcome {
  query: TrainingQuery;
  /** UTF-8 bytes of the continuation. */
  bytes: number;
  /** log P_LM(y | x), no passage. */
  noRetrievalLogProb: number;
  /** Whether some passage of the pool gives y a higher likelihood than the context alone. */
  retrievalHelps: boolean;
  retrievers: RetrieverOutcome[];
}

export interface RetrieverOutcome {
  /** Teacher-gold nDCG@k. */
  ndcg: number;
  /** log p(y | x) under the REPLUG ensemble of the top `ensembleK`. */
  logProb: number;
  /** KL(Q ‖ P_R) over the top `ensembleK` passages: the training loss, on a held-out query. */
  loss: number;
  abstention?: AbstentionOutcome;
}

export interface AbstentionOutcome {
  /** ∅ outranks every passage (its score is above the best cosine). */
  abstained: boolean;
  /** P_R(∅) among ∅ and the top `ensembleK`. */
  weight: number;
  /** log p(y | x) under the ensemble with ∅ in it, at that weight. */
  logProb: number;
  /** KL(Q ‖ P_R) over the top `ensembleK` and ∅. */
  loss: number;
}

export interface RetrieverScores {
  name: string;
  /** Gold = the passage the LM teacher scores best among all retrievers' candidates. */
  teacher: { ndcg: number; recall: number; mrr: number };
  /**
   * For every retriever after the first: its teacher nDCG@k minus the first's, with the standard error of the
   * per-query differences (whether a gain is larger than the noise of this query sample).
   */
  ndcgGain?: { mean: number; stdErr: number };
  /** Gold = passages (outside the query's file) containing a line of the continuation; over queries that have one. */
  contains?: { ndcg: number; recall: number; mrr: number; queries: number };
  /** REPLUG ensemble over the top `ensembleK` passages. */
  bitsPerByte: number;
  /** Mean KL(Q ‖ P_R) over the top `ensembleK` passages (the training loss, held out). */
  loss?: number;
  /** For a retriever trained with --abstain. */
  abstention?: AbstentionScores;
}

export interface AbstentionScores {
  /** Share of queries where ∅ outranks every passage. */
  rate: number;
  /** The same share among the queries where no passage of the pool helps the LM, and where one does (undefined: no such query). */
  rateWhereNothingHelps?: number;
  rateWhereRetrievalHelps?: number;
  /** Mean P_R(∅) among ∅ and the top `ensembleK`. */
  weight: number;
  /** The REPLUG ensemble with ∅ among its members. */
  bitsPerByte: number;
  /** Mean KL(Q ‖ P_R) over the top `ensembleK` and ∅. */
  loss: number;
}

export interface EvalReport {
  queries: number;
  k: number;
  noRetrievalBitsPerByte: number;
  /** Queries where no passage of the pool (every retriever's candidates and BM25's) raises the LM's likelihood of y. */
  nothingHelps?: number;
  retrievers: RetrieverScores[];
}

/** Lines too common to identify where a continuation comes from (braces, `return;`, blank). */
const MIN_GOLD_LINE = 12;

/**
 * Retrieval quality of each retriever on held-out queries, against two kinds of gold, and REPLUG's own measure:
 * bits per byte of the continuations under the retrieval-weighted LM ensemble, beside the LM with no passage.
 */
export async function evaluateRetrievers(opts: EvalOptions): Promise<EvalReport> {
  const candidates = await Promise.all(opts.retrievers.map((r) => candidateIndexFor(r, opts.index)));
  const sums = opts.retrievers.map(() => ({ teacher: [0, 0, 0], contains: [0, 0, 0], containsQueries: 0 }));
  const outcomes: QueryOutcome[] = [];
  const allPassages = opts.index.passages();
  const beta = opts.beta ?? DEFAULT_LSR_SETTINGS.beta;

  for (let qi = 0; qi < opts.queries.length; qi++) {
    const query = opts.queries[qi];
    const exclude = ownSource(query);
    const rankings: VectorHit[][] = [];
    const emptyScores: (number | undefined)[] = [];
    for (let r = 0; r < opts.retrievers.length; r++) {
      const [vector] = await opts.retrievers[r].encoder.embed([query.context]);
      rankings.push(candidates[r].search(vector, Math.max(2 * opts.k, opts.ensembleK), exclude));
      emptyScores.push(opts.retrievers[r].abstention?.score);
    }
    // The teacher's gold is chosen from a pool deeper than the cut-off and shared by all retrievers (plus BM25's
    // top passages), so recall@k can fall short of 1 and no retriever is judged only on what it found itself.
    const pool = new Map<string, Passage>();
    for (const ranking of rankings) for (const hit of ranking) pool.set(hit.passage.id, hit.passage);
    for (const hit of await opts.index.search(query.context, { k: 2 * opts.k, mode: 'lexical', exclude })) pool.set(hit.passage.id, hit.passage);
    const poolIds = [...pool.keys()];
    const [none, ...scores] = await opts.scorer.score([
      { doc: '', context: query.context, continuation: query.continuation },
      ...poolIds.map((id) => ({ doc: pool.get(id)!.text, context: query.context, continuation: query.continuation })),
    ]);
    const logProb = new Map(poolIds.map((id, i) => [id, scores[i].logProb]));
    const best = Math.max(...logProb.values());
    const teacherGold = new Set(poolIds.filter((id) => logProb.get(id) === best));
    const containsGold = goldByContent(query, allPassages, exclude);

    const retrievers = rankings.map((ranking, r): RetrieverOutcome => {
      const ids = ranking.slice(0, opts.k).map((h) => h.passage.id);
      const s = sums[r];
      const ndcg = addMetrics(s.teacher, ids, teacherGold, opts.k);
      if (containsGold.size > 0) {
        addMetrics(s.contains, ids, containsGold, opts.k);
        s.containsQueries++;
      }
      const top = ranking.slice(0, opts.ensembleK);
      const lps = top.map((h) => logProb.get(h.passage.id)!);
      const sims = top.map((h) => h.similarity);
      const empty = emptyScores[r];
      return {
        ndcg,
        logProb: ensembleLogProb(lps, sims, opts.gamma),
        loss: lsrLoss(lps, sims, beta, opts.gamma),
        abstention: empty === undefined ? undefined : withEmptyPassage([...lps, none.logProb], [...sims, empty], beta, opts.gamma, opts.retrievers[r].abstention!.abstains(sims[0])),
      };
    });
    const outcome = { query, bytes: Buffer.byteLength(query.continuation, 'utf8'), noRetrievalLogProb: none.logProb, retrievalHelps: best > none.logProb, retrievers };
    outcomes.push(outcome);
    opts.onQuery?.(outcome);
    opts.onProgress?.(qi + 1, opts.queries.length);
  }

  const n = opts.queries.length;
  const bytes = sumOf(outcomes.map((o) => o.bytes));
  const asBits = (logProbs: number[]) => bitsPerByte(sumOf(logProbs), bytes);
  const mean = (xs: number[]) => sumOf(xs) / xs.length;
  const ndcgs = (r: number) => outcomes.map((o) => o.retrievers[r].ndcg);
  return {
    queries: n,
    k: opts.k,
    noRetrievalBitsPerByte: asBits(outcomes.map((o) => o.noRetrievalLogProb)),
    nothingHelps: outcomes.filter((o) => !o.retrievalHelps).length,
    retrievers: opts.retrievers.map((r, i) => {
      const s = sums[i];
      const mine = outcomes.map((o) => ({ ...o.retrievers[i], retrievalHelps: o.retrievalHelps }));
      return {
        name: r.name,
        teacher: { ndcg: s.teacher[0] / n, recall: s.teacher[1] / n, mrr: s.teacher[2] / n },
        ndcgGain: i > 0 ? pairedDifference(ndcgs(i), ndcgs(0)) : undefined,
        contains: s.containsQueries
          ? { ndcg: s.contains[0] / s.containsQueries, recall: s.contains[1] / s.containsQueries, mrr: s.contains[2] / s.containsQueries, queries: s.containsQueries }
          : undefined,
        bitsPerByte: asBits(mine.map((o) => o.logProb)),
        loss: mean(mine.map((o) => o.loss)),
        abstention: r.abstention && abstentionScores(mine.map((o) => ({ ...o.abstention!, retrievalHelps: o.retrievalHelps })), asBits),
      };
    }),
  };
}

/** KL(Q ‖ P_R) with Q = softmax(logProbs/β) and P_R = softmax(similarities/γ), over the same candidates. */
export function lsrLoss(logProbs: readonly number[], similarities: readonly number[], beta: number, gamma: number): number {
  const logQ = logSoftmax(logProbs.map((lp) => lp / beta));
  const logP = logSoftmax(similarities.map((s) => s / gamma));
  return sumOf(logQ.map((lq, i) => (lq === -Infinity ? 0 : Math.exp(lq) * (lq - logP[i]))));
}

/** One query's outcome with ∅ last among the candidates: its LM log-prob is the context alone's, its score τ. */
function withEmptyPassage(logProbs: number[], similarities: number[], beta: number, gamma: number, abstained: boolean): AbstentionOutcome {
  return {
    abstained,
    weight: Math.exp(logSoftmax(similarities.map((s) => s / gamma)).at(-1)!),
    logProb: ensembleLogProb(logProbs, similarities, gamma),
    loss: lsrLoss(logProbs, similarities, beta, gamma),
  };
}

function abstentionScores(outcomes: (AbstentionOutcome & { retrievalHelps: boolean })[], asBits: (logProbs: number[]) => number): AbstentionScores {
  const rate = (of: typeof outcomes) => (of.length ? of.filter((o) => o.abstained).length / of.length : undefined);
  return {
    rate: rate(outcomes)!,
    rateWhereNothingHelps: rate(outcomes.filter((o) => !o.retrievalHelps)),
    rateWhereRetrievalHelps: rate(outcomes.filter((o) => o.retrievalHelps)),
    weight: sumOf(outcomes.map((o) => o.weight)) / outcomes.length,
    bitsPerByte: asBits(outcomes.map((o) => o.logProb)),
    loss: sumOf(outcomes.map((o) => o.loss)) / outcomes.length,
  };
}

function sumOf(xs: readonly number[]): number {
  return xs.reduce((a, b) => a + b, 0);
}

/** Adds one query's nDCG@k, recall@k and reciprocal rank to `acc`; returns its nDCG@k. */
function addMetrics(acc: number[], ids: string[], gold: ReadonlySet<string>, k: number): number {
  const ndcg = ndcgAt(ids, gold, k);
  acc[0] += ndcg;
  acc[1] += recallAt(ids, gold, k);
  acc[2] += reciprocalRank(ids, gold);
  return ndcg;
}

/** Passages outside the query's own source that contain one of the continuation's distinctive lines. */
export function goldByContent(query: TrainingQuery, passages: readonly Passage[], exclude: (p: Passage) => boolean): Set<string> {
  const lines = query.continuation
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l.length >= MIN_GOLD_LINE);
  if (lines.length === 0) return new Set();
  return new Set(passages.filter((p) => !exclude(p) && lines.some((l) => p.text.includes(l))).map((p) => p.id));
}

/**
 * A query tower trained against this index searches its stored vectors; any other encoder (a base model, or one
 * trained in shared mode) embeds the documents itself, as it would once the index is rebuilt with it.
 */
export async function candidateIndexFor(retriever: Retriever, index: WorkspaceIndex): Promise<CandidateIndex> {
  const stored = index.storedManifest()?.encoder;
  const sameEncoder = (s: EncoderStamp) => retriever.encoder.fingerprint === s.fingerprint && retriever.encoder.precision === stampPrecision(s);
  const storedVectorsFit = stored !== undefined && (sameEncoder(stored) || isQueryTowerFor(retriever.model, stored.fingerprint));
  if (storedVectorsFit) return new StoredCandidates(index);
  const passages = index.passages();
  const vectors = await retriever.encoder.embed(passages.map((p) => p.text));
  return RefreshedCandidates.build(passages, vectors);
}

/**
 * The precision to load a retriever's encoder at: a query tower at its training graph's (QUERY_TOWER_PRECISION);
 * any other encoder at the stored vectors' precision, so that base and tuned are compared at the same precision
 * and the base can search the stored vectors.
 */
export function retrieverPrecision(model: string, stored: EncoderStamp | undefined): PrecisionChoice {
  if (!stored) return 'auto';
  return isQueryTowerFor(model, stored.fingerprint) ? QUERY_TOWER_PRECISION : stampPrecision(stored);
}
