import type { TokenBudgets } from '../lm/budgets';
import type { LmScorer } from '../lm/scorer';
import type { TrainingQuery } from './training-queries';

export interface FittedQueries {
  queries: TrainingQuery[];
  /** Queries whose continuation lost whole lines (or words) at its end to fit. */
  shortened: number;
  /** Queries whose first line (or word) of continuation alone is over the budget. */
  dropped: number;
}

/**
 * Queries are cut by the corpus's token estimate, but the LM counts its own tokens (a byte-level or small vocabulary
 * splits code much finer), and a continuation is never cut inside the scorer. So before training or evaluation each
 * continuation is shortened here, by whole lines from its end (words for one-line text), until `cost` (the LM's
 * count; LmScorer.continuationCost) fits `budget`. The order of queries is kept.
 */
export async function fitContinuations(queries: readonly TrainingQuery[], cost: (text: string) => Promise<number>, budget: number): Promise<FittedQueries> {
  const fitted = await Promise.all(queries.map((q) => fitOne(q, cost, budget)));
  return {
    queries: fitted.filter((q): q is TrainingQuery => q !== undefined),
    shortened: fitted.filter((q, i) => q !== undefined && q.continuation !== queries[i].continuation).length,
    dropped: fitted.filter((q) => q === undefined).length,
  };
}

async function fitOne(query: TrainingQuery, cost: (text: string) => Promise<number>, budget: number): Promise<TrainingQuery | undefined> {
  if ((await cost(query.continuation)) <= budget) return query;
  const byLines = query.continuation.includes('\n');
  const units = byLines ? query.continuation.split('\n') : query.continuation.split(/(?<=\s)/);
  const joiner = byLines ? '\n' : '';
  const text = (n: number) => units.slice(0, n).join(joiner);
  // The largest n whose first n units fit; n = units.length is known not to.
  let lo = 0;
  let hi = units.length - 1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if ((await cost(text(mid))) <= budget) lo = mid;
    else hi = mid - 1;
  }
  if (lo === 0 || text(lo).trim() === '') return undefined;
  return { ...query, continuation: text(lo), continuationEnd: byLines ? query.continuationStart + lo - 1 : query.continuationEnd };
}

/**
 * Probes the teacher (failing fast, before any training work), says what it supports and which budgets were
 * chosen, and fits the queries' continuations to the continuation budget.
 */
export async function readyTeacher(
  scorer: LmScorer,
  queries: readonly TrainingQuery[],
  say: (line: string) => void,
): Promise<{ queries: TrainingQuery[]; budgets: TokenBudgets }> {
  const { capabilities, budgets } = await scorer.setup();
  for (const note of capabilities.notes) say(`note: ${note}`);
  say(budgets.summary);
  const fitted = await fitContinuations(queries, (text) => scorer.continuationCost(text), budgets.budgets.continuation);
  if (fitted.shortened || fitted.dropped) {
    say(
      `${fitted.shortened} continuation${fitted.shortened === 1 ? '' : 's'} shortened to fit the ${budgets.budgets.continuation}-token continuation budget` +
        (fitted.dropped ? `; ${fitted.dropped} quer${fitted.dropped === 1 ? 'y' : 'ies'} left out (its first line alone is over the budget)` : ''),
    );
  }
  return { queries: fitted.queries, budgets: budgets.budgets };
}
