import { logSumExp } from '../eval/ensemble';

/**
 * How a passage's probability of a candidate token is estimated when the server left that token out of the
 * passage's top-N (another passage proposed it):
 * - `floor`: the passage's leftover mass (1 − Σ top-N) shared evenly among such tokens, but never above the passage's
 *   own N-th probability (a token outside the top-N cannot be likelier than the last one in it). Assumes the k
 *   prompts, which share the context, rank candidates alike: a token another passage ranks highly sits just below
 *   this passage's cut-off.
 * - `zero`: nothing (the mixture counts a token only where it made the top-N).
 */
export type TailPolicy = 'floor' | 'zero';

/** One passage's next-token distribution as the server returned it: log-probs of its top-N tokens. */
export interface PassageTop<K> {
  /** log λ_d: the passage's log retrieval weight (the weights sum to one). */
  logWeight: number;
  top: ReadonlyMap<K, number>;
}

/**
 * log Σ_d λ_d · p_d(t) for every token t in some passage's top-N (the only tokens the ensemble can choose from),
 * with p_d(t) estimated by `tail` where t is outside passage d's list. Log space throughout: the weights of
 * distant passages underflow when exponentiated on their own.
 */
export function mixCandidates<K>(passages: readonly PassageTop<K>[], tail: TailPolicy): Map<K, number> {
  const candidates = candidateSet(passages);
  const credits = passages.map((p) => tailCredit(p, candidates, tail));
  const mixed = new Map<K, number>();
  for (const key of candidates) {
    mixed.set(key, logSumExp(passages.map((p, d) => p.logWeight + (p.top.get(key) ?? credits[d].logEach))));
  }
  return mixed;
}

/**
 * log P(token) under the ensemble over the whole vocabulary of `vocabSize` tokens: candidates as in
 * mixCandidates, and each passage's mass left after its top-N and its tail credits spread evenly over the tokens no
 * passage listed. A proper distribution (it sums to one), so bits per byte can be computed from it.
 */
export function mixtureLogProb<K>(passages: readonly PassageTop<K>[], tail: TailPolicy, token: K, vocabSize: number): number {
  const candidates = candidateSet(passages);
  if (candidates.has(token)) return mixCandidates(passages, tail).get(token)!;
  const unlisted = vocabSize - candidates.size;
  if (unlisted <= 0) return -Infinity;
  return logSumExp(
    passages.map((p) => {
      const { logEach, missing } = tailCredit(p, candidates, tail);
      const listed = listedMass(p) + missing * Math.exp(logEach);
      return p.logWeight + Math.log(Math.max(0, 1 - listed) / unlisted);
    }),
  );
}

function candidateSet<K>(passages: readonly PassageTop<K>[]): Set<K> {
  const candidates = new Set<K>();
  for (const p of passages) for (const key of p.top.keys()) candidates.add(key);
  return candidates;
}

function listedMass<K>(p: PassageTop<K>): number {
  let sum = 0;
  for (const lp of p.top.values()) sum += Math.exp(lp);
  return sum;
}

/** What passage `p` is credited with (log, each) for the `missing` candidates outside its top-N. */
function tailCredit<K>(p: PassageTop<K>, candidates: ReadonlySet<K>, tail: TailPolicy): { logEach: number; missing: number } {
  let missing = 0;
  for (const key of candidates) if (!p.top.has(key)) missing++;
  if (tail === 'zero' || missing === 0) return { logEach: -Infinity, missing };
  const leftover = Math.max(0, 1 - listedMass(p));
  return { logEach: Math.min(Math.min(...p.top.values()), Math.log(leftover / missing)), missing };
}

export interface Sampling {
  /** 0 (or absent): greedy. */
  temperature?: number;
  /** Nucleus cut-off in (0, 1]; 1 keeps every candidate. */
  topP?: number;
  /** Uniform [0, 1) draws; seeded for reproducible samples. */
  random: () => number;
}

/**
 * The next token: the ensemble's argmax (ties: the first candidate seen), or a draw from the candidates'
 * probabilities sharpened by 1/temperature and cut to the top-p nucleus. Sampling is over the candidates only (the
 * union of the passages' top-N lists), like top-k sampling with k = that union's size.
 */
export function chooseToken<K>(mixed: ReadonlyMap<K, number>, sampling: Sampling): K {
  const entries = [...mixed.entries()];
  if (entries.length === 0) throw new Error('no candidate tokens to choose from');
  const temperature = sampling.temperature ?? 0;
  if (temperature <= 0) return entries.reduce((best, e) => (e[1] > best[1] ? e : best))[0];
  const scaled = entries.map(([key, lp]) => [key, lp / temperature] as const).sort((a, b) => b[1] - a[1]);
  const norm = logSumExp(scaled.map((e) => e[1]));
  const probs = scaled.map(([key, lp]) => [key, Math.exp(lp - norm)] as const);
  const topP = sampling.topP ?? 1;
  let kept = probs.length;
  if (topP < 1) {
    let cumulative = 0;
    // The epsilon keeps a nucleus that reaches top_p exactly from losing its last token to rounding.
    kept = probs.findIndex(([, p]) => (cumulative += p) >= topP - 1e-9) + 1 || probs.length;
  }
  const nucleus = probs.slice(0, kept);
  const total = nucleus.reduce((s, [, p]) => s + p, 0);
  let u = sampling.random() * total;
  for (const [key, p] of nucleus) if ((u -= p) < 0) return key;
  return nucleus[nucleus.length - 1][0];
}
