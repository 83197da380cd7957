import { createHash } from 'node:crypto';
import { contextLengthFromError, resolveBudgets, type ResolvedBudgets, type TokenBudgets } from './budgets';
import { LmClient } from './lm-client';
import { LmError } from './lm-error';
import { continuationLogProbs, type Prepared } from './logprob-response';
import { Lru } from './lru';
import { modelNotServed, probeServer, servedModels, type ServerCapabilities } from './server-probe';
import { TokenizerEndpoint } from './tokenizer-endpoint';
import { continuationStartByIds } from './span';

export type { ServerCapabilities } from './server-probe';

/** One LSR scoring unit: the retrieved passage d, the query x (code before the point) and its continuation y. */
export interface ScorePair {
  doc: string;
  context: string;
  continuation: string;
}

/** log P_LM(y | d ⊕ x): the sum over y's tokens, how many tokens y has, and (from LmScorer, always) each token's log-prob. */
export interface PairScore {
  logProb: number;
  tokens: number;
  perToken?: number[];
}

/** What LSR training needs from a teacher; LmScorer is the real one. */
export interface Scorer {
  score(pairs: ScorePair[]): Promise<PairScore[]>;
}

export interface LmScorerOptions {
  /** OpenAI base URL, e.g. http://127.0.0.1:8000/v1. */
  baseUrl: string;
  /** Served model name (as in GET /v1/models). */
  model: string;
  apiKey?: string;
  /** Put between the passage and the query; default "\n". */
  separator?: string;
  /** Token budgets in the LM's tokens; unset ones default to 128 and shrink to fit the served model's context. */
  docTokens?: number;
  contextTokens?: number;
  continuationTokens?: number;
  /** Most HTTP requests in flight; default 8. */
  concurrency?: number;
  /** Prompts per completions request; default 8. */
  batchSize?: number;
  /** Scored pairs kept in memory; default 100000, 0 disables the cache. */
  cacheSize?: number;
  /** Per-request limit; default 60000 ms. */
  timeoutMs?: number;
  /** Limit of probe requests; default 10000 ms. */
  probeTimeoutMs?: number;
  /** Extra attempts after transient failures; default 4. */
  retries?: number;
  /** First backoff delay; default 250 ms. */
  retryBaseMs?: number;
  /** Characters per token used to apply budgets when the server has no /tokenize; default 4. */
  charsPerToken?: number;
}

/** What scoring runs with: the server's capabilities and the budgets chosen for it. */
export interface ScorerSetup {
  capabilities: ServerCapabilities;
  budgets: ResolvedBudgets;
}

export interface ScorerStats {
  /** HTTP requests sent (probes, tokenize, detokenize and completions, retries included). */
  requests: number;
  retries: number;
  completionRequests: number;
  /** Prompt tokens the server reported scoring. */
  promptTokens: number;
  /** Pairs answered, from the server or the cache. */
  scoredPairs: number;
  cacheHits: number;
  /** Wall time during which at least one score() call was running. */
  busyMs: number;
  /** Pairs answered per busy second, and completions requests per busy second (tokenize calls are not counted). */
  pairsPerSecond: number;
  completionRequestsPerSecond: number;
  tokensPerSecond: number;
}

type Json = Record<string, unknown>;

function endsWith(ids: readonly number[], tail: readonly number[]): boolean {
  if (tail.length === 0 || tail.length > ids.length) return false;
  const offset = ids.length - tail.length;
  return tail.every((id, i) => ids[offset + i] === id);
}

const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * Scores log P_LM(y | d ⊕ separator ⊕ x) against an OpenAI-compatible server (vLLM in production).
 *
 * Truncation: the doc keeps its START (a code passage's head carries the signature and names the retriever
 * matched on) and the context keeps its END (the code right before y). The continuation is never truncated: one
 * over its budget is an error, because scoring a silently shortened y would change the training target (callers
 * fit their continuations to the budget first: fit-queries.ts).
 */
export class LmScorer implements Scorer {
  readonly client: LmClient;
  private readonly model: string;
  private readonly separator: string;
  private readonly requested: Partial<TokenBudgets>;
  private readonly batchSize: number;
  private readonly charsPerToken: number;
  private readonly cache: Lru<string, PairScore>;
  private readonly tokens: TokenizerEndpoint;
  private setupPromise?: Promise<ScorerSetup>;
  /** The settled setup, for the synchronous helpers (every path awaits setup() first). */
  private current: ScorerSetup | undefined;
  private readonly totals = { completionRequests: 0, promptTokens: 0, scoredPairs: 0, cacheHits: 0, busyMs: 0 };
  private running = 0;
  private busySince = 0;

  constructor(options: LmScorerOptions) {
    if (!options.model) throw new Error('LM model name is required (as listed by GET /v1/models on the server)');
    this.model = options.model;
    this.separator = options.separator ?? '\n';
    this.requested = { doc: options.docTokens, context: options.contextTokens, continuation: options.continuationTokens };
    resolveBudgets(this.requested, undefined); // validates them now rather than at the first score
    this.batchSize = options.batchSize ?? 8;
    if (!Number.isInteger(this.batchSize) || this.batchSize < 1) throw new Error(`batch size must be a positive integer (got ${this.batchSize})`);
    this.charsPerToken = options.charsPerToken ?? 4;
    this.cache = new Lru(options.cacheSize ?? 100_000);
    this.client = new LmClient({
      baseUrl: options.baseUrl,
      apiKey: options.apiKey,
      concurrency: options.concurrency ?? 8,
      timeoutMs: options.timeoutMs ?? 60_000,
      probeTimeoutMs: options.probeTimeoutMs,
      retries: options.retries ?? 4,
      retryBaseMs: options.retryBaseMs ?? 250,
    });
    this.tokens = new TokenizerEndpoint(this.client, this.model);
  }

  async score(pairs: ScorePair[]): Promise<PairScore[]> {
    pairs.forEach((pair, i) => {
      if (typeof pair?.doc !== 'string' || typeof pair.context !== 'string' || typeof pair.continuation !== 'string') {
        throw new Error(`pair ${i}: doc, context and continuation must be strings`);
      }
      if (pair.continuation.length === 0) throw new Error(`pair ${i}: continuation is empty; there is nothing to score`);
    });
    if (this.running++ === 0) this.busySince = performance.now();
    try {
      await this.setup();
      const results: PairScore[] = new Array(pairs.length);
      const pending = new Map<string, number[]>(); // cache key -> indices of pairs with that key
      pairs.forEach((pair, i) => {
        const key = this.cacheKey(pair);
        const hit = this.cache.get(key);
        const waiting = pending.get(key);
        if (hit) results[i] = hit;
        else if (waiting) waiting.push(i);
        else pending.set(key, [i]);
        if (hit || waiting) this.totals.cacheHits++;
      });
      const keys = [...pending.keys()];
      const batches: string[][] = [];
      for (let i = 0; i < keys.length; i += this.batchSize) batches.push(keys.slice(i, i + this.batchSize));
      let next = 0;
      let failed = false;
      const worker = async () => {
        while (!failed && next < batches.length) {
          const batch = batches[next++];
          try {
            const scores = await this.scoreBatch(batch.map((key) => pairs[pending.get(key)![0]]));
            batch.forEach((key, j) => {
              this.cache.set(key, scores[j]);
              for (const index of pending.get(key)!) results[index] = scores[j];
            });
          } catch (err) {
            failed = true;
            throw err;
          }
        }
      };
      await Promise.all(Array.from({ length: Math.min(this.client.options.concurrency, batches.length) }, worker));
      this.totals.scoredPairs += pairs.length;
      return results;
    } finally {
      if (--this.running === 0) this.totals.busyMs += performance.now() - this.busySince;
    }
  }

  stats(): ScorerStats {
    const busyMs = this.totals.busyMs + (this.running > 0 ? performance.now() - this.busySince : 0);
    const seconds = busyMs / 1000;
    const rate = (n: number) => (seconds > 0 ? n / seconds : 0);
    const { requests, retries } = this.client.counters;
    return {
      ...this.totals,
      busyMs,
      requests,
      retries,
      pairsPerSecond: rate(this.totals.scoredPairs),
      completionRequestsPerSecond: rate(this.totals.completionRequests),
      tokensPerSecond: rate(this.totals.promptTokens),
    };
  }

  /** What the server supports (probed once; a failed probe is retried on the next call). */
  async capabilities(): Promise<ServerCapabilities> {
    return (await this.setup()).capabilities;
  }

  /** Probes the server once and sizes the token budgets to its context length. */
  setup(): Promise<ScorerSetup> {
    this.setupPromise ??= (async () => {
      const capabilities = await probeServer(this.client, this.model);
      this.current = { capabilities, budgets: resolveBudgets(this.requested, capabilities.contextLength) };
      return this.current;
    })().catch((err) => {
      this.setupPromise = undefined; // a server that was down may come up: probe again next time
      throw err;
    });
    return this.setupPromise;
  }

  /**
   * How many of the continuation budget's tokens `text` takes as a continuation: its LM tokens plus one, because the
   * token that straddles the junction with the context counts toward y (span.ts). Without /tokenize, an estimate
   * from its length.
   */
  async continuationCost(text: string): Promise<number> {
    const { capabilities } = await this.setup();
    if (!capabilities.tokenize) return Math.ceil(text.length / this.charsPerToken) + 1;
    return (await this.tokens.tokenize(text, false)).length + 1;
  }

  private budgets(): TokenBudgets {
    if (!this.current) throw new Error('scorer used before setup()');
    return this.current.budgets.budgets;
  }

  private cacheKey(pair: ScorePair): string {
    const { doc, context, continuation } = this.budgets();
    const fields = [this.model, this.separator, doc, context, continuation, this.charsPerToken, pair.doc, pair.context, pair.continuation];
    return createHash('sha256').update(JSON.stringify(fields)).digest('base64');
  }

  private overBudget(tokens: number): LmError {
    return new LmError(
      'over-budget',
      `continuation has ${tokens} tokens, over its budget of ${this.budgets().continuation}; raise the continuation budget (--continuation-tokens) or use a shorter continuation`,
    );
  }

  /** Token-exact preparation: truncate each part by its tokens, then tokenize prefix and prefix ⊕ y to find y's span. */
  private async prepareIds(pair: ScorePair): Promise<Prepared> {
    const budgets = this.budgets();
    const [docIds, contextIds, yIds] = await Promise.all([this.tokens.tokenize(pair.doc, false), this.tokens.tokenize(pair.context, false), this.tokens.tokenize(pair.continuation, false)]);
    if (yIds.length > budgets.continuation) throw this.overBudget(yIds.length);
    // Cut parts go back to text through the server's own /detokenize, so the prompt is re-tokenized as one string
    // (tokens of separately tokenized parts would not concatenate: sentencepiece adds a prefix space to each).
    const [doc, context] = await Promise.all([
      docIds.length > budgets.doc ? this.tokens.detokenize(docIds.slice(0, budgets.doc)) : pair.doc,
      contextIds.length > budgets.context ? this.tokens.detokenize(contextIds.slice(contextIds.length - budgets.context)) : pair.context,
    ]);
    const prefix = doc + this.separator + context;
    const ids = await this.tokens.tokenize(prefix + pair.continuation, true);
    // Usually y's own tokens end the prompt unchanged (a clean junction), and then they are its span: the prefix
    // needs no request of its own. Otherwise y starts where the prefix's tokens and the prompt's first differ.
    const yStart = endsWith(ids, yIds) ? ids.length - yIds.length : continuationStartByIds(await this.tokens.tokenize(prefix, true), ids);
    if (ids.length - yStart > budgets.continuation) throw this.overBudget(ids.length - yStart);
    return { ids, yStart };
  }

  /** Without /tokenize, budgets are applied in characters (charsPerToken per token) and y is located by text_offset. */
  private prepareText(pair: ScorePair): Prepared {
    const budgets = this.budgets();
    const doc = pair.doc.slice(0, budgets.doc * this.charsPerToken);
    const context = pair.context.slice(Math.max(0, pair.context.length - budgets.context * this.charsPerToken));
    const prefix = doc + this.separator + context;
    return { text: prefix + pair.continuation, yStart: prefix.length };
  }

  private async scoreBatch(pairs: ScorePair[], retried = false): Promise<PairScore[]> {
    const { capabilities: caps, budgets: used } = await this.setup();
    const prepared = caps.tokenize ? await Promise.all(pairs.map((p) => this.prepareIds(p))) : pairs.map((p) => this.prepareText(p));
    const prompts = prepared.map((p) => ('ids' in p ? p.ids : p.text));
    const body: Json = caps.source === 'echo'
      ? { model: this.model, prompt: prompts, echo: true, logprobs: 1, max_tokens: caps.maxTokens, temperature: 0 }
      : { model: this.model, prompt: prompts, prompt_logprobs: 0, max_tokens: 1, temperature: 0 };
    // vLLM then names echoed tokens by id, so the answer can be checked against the prompt token by token.
    if (caps.tokenize) body.return_tokens_as_token_ids = true;
    let response: unknown;
    try {
      this.totals.completionRequests++;
      response = await this.client.post('/completions', body);
    } catch (err) {
      // Batches in flight together were built with the same budgets: the first to fail learns the context length,
      // and the others resend with it too.
      if (!retried && (this.current?.budgets !== used || this.learnContextLength(err))) return this.scoreBatch(pairs, true);
      throw await this.explain(err);
    }
    const where = `POST ${this.client.urlOf('/completions')}`;
    if (!isObject(response) || !Array.isArray(response.choices) || response.choices.length !== prompts.length) {
      throw new LmError('malformed', `${where} answered without one choice per prompt (sent ${prompts.length})`);
    }
    const choices = [...response.choices].sort((a, b) => (isObject(a) && isObject(b) ? Number(a.index) - Number(b.index) : 0));
    const usage = isObject(response.usage) ? Number(response.usage.prompt_tokens) : NaN;
    if (caps.tokenize && Number.isFinite(usage)) {
      const sent = prepared.reduce((sum, p) => sum + ('ids' in p ? p.ids.length : 0), 0);
      if (usage !== sent) throw new LmError('malformed', `${where} reports ${usage} prompt tokens for ${sent} sent; its log-probabilities cannot be matched to the prompts`);
    }
    this.totals.promptTokens += Number.isFinite(usage) ? usage : 0;
    return prepared.map((item, i) => {
      const perToken = continuationLogProbs(item, choices[i], caps, `${where} (prompt ${i})`);
      return { logProb: perToken.reduce((a, b) => a + b, 0), tokens: perToken.length, perToken };
    });
  }

  /**
   * A server that does not say its context length says it when a prompt is too long: with budgets left to
   * their defaults, they are sized to it and the batch is sent once more.
   */
  private learnContextLength(err: unknown): boolean {
    if (!(err instanceof LmError) || err.kind !== 'context-length' || !this.current || this.current.budgets.contextLength !== undefined) return false;
    if (Object.values(this.requested).every((v) => v !== undefined)) return false;
    const contextLength = contextLengthFromError(err.message);
    if (contextLength === undefined) return false;
    this.current = { ...this.current, budgets: resolveBudgets(this.requested, contextLength) };
    this.setupPromise = Promise.resolve(this.current);
    return true;
  }

  /** Turns a failed completions call into an error that says what to change. */
  private async explain(err: unknown): Promise<unknown> {
    if (!(err instanceof LmError)) return err;
    if (err.kind === 'not-found') {
      const served = await servedModels(this.client).then((list) => list.map((m) => String(m.id)), () => undefined);
      return served && !served.includes(this.model) ? modelNotServed(this.client, this.model, served) : err;
    }
    if (err.kind === 'context-length') {
      const { doc, context, continuation } = this.budgets();
      return new LmError('context-length', `prompt is longer than the LM's context (server: ${err.message}); lower the doc budget (${doc}, --doc-tokens) or the context budget (${context}, --context-tokens); continuation budget is ${continuation}`, err.status);
    }
    return err;
  }
}
