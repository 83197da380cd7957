import { createHash } from 'node:crypto';
import { LmClient } from './lm-client';
import { LmError } from './lm-error';
import { Lru } from './lru';
import { continuationRangeByOffsets, continuationStartByIds } from './span';

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
  /** Token budgets; defaults 128 each. */
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
  /** Extra attempts after transient failures; default 4. */
  retries?: number;
  /** First backoff delay; default 250 ms. */
  retryBaseMs?: number;
  /** Characters per token used to apply budgets when the server has no /tokenize; default 4. */
  charsPerToken?: number;
}

/** What the server turned out to support (probed once per scorer). */
export interface ServerCapabilities {
  /** vLLM's /tokenize: prompts are sent as token ids and y's span is exact. */
  tokenize: boolean;
  /** Where prompt log-probs come from: echo + logprobs, or vLLM's prompt_logprobs extension. */
  source: 'echo' | 'prompt_logprobs';
  /** 0 when the server accepts max_tokens 0; otherwise 1 and the generated token is ignored. */
  maxTokens: 0 | 1;
}

export interface ScorerStats {
  /** HTTP requests sent (tokenize and completions, retries included). */
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
  requestsPerSecond: number;
  tokensPerSecond: number;
}

/** A pair ready to send: token ids with y's first token index, or a string with y's first character index. */
type Prepared = { ids: number[]; yStart: number } | { text: string; yStart: number };

type Json = Record<string, unknown>;

const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * Scores log P_LM(y | d ⊕ separator ⊕ x) against an OpenAI-compatible server (vLLM in production).
 *
 * Truncation: the doc keeps its START (a code passage's head carries the signature and names the retriever
 * matched on) and the context keeps its END (the code right before y). The continuation is never truncated: one
 * over its budget is an error, because scoring a silently shortened y would change the training target.
 */
export class LmScorer implements Scorer {
  readonly client: LmClient;
  private readonly model: string;
  private readonly separator: string;
  private readonly budgets: { doc: number; context: number; continuation: number };
  private readonly batchSize: number;
  private readonly charsPerToken: number;
  private readonly cache: Lru<string, PairScore>;
  private readonly tokenCache = new Lru<string, Promise<number[]>>(20_000);
  private capabilitiesPromise?: Promise<ServerCapabilities>;
  private readonly totals = { completionRequests: 0, promptTokens: 0, scoredPairs: 0, cacheHits: 0, busyMs: 0 };
  private running = 0;
  private busySince = 0;

  constructor(options: LmScorerOptions) {
    if (!options.model) throw new Error('LM model name is required (as listed by GET /v1/models on the server)');
    this.model = options.model;
    this.separator = options.separator ?? '\n';
    this.budgets = { doc: options.docTokens ?? 128, context: options.contextTokens ?? 128, continuation: options.continuationTokens ?? 128 };
    for (const [name, value] of Object.entries(this.budgets)) {
      if (!Number.isInteger(value) || value < 0) throw new Error(`${name} token budget must be a non-negative integer (got ${value})`);
    }
    this.batchSize = options.batchSize ?? 8;
    if (!Number.isInteger(this.batchSize) || this.batchSize < 1) throw new Error(`batch size must be a positive integer (got ${this.batchSize})`);
    this.charsPerToken = options.charsPerToken ?? 4;
    this.cache = new Lru(options.cacheSize ?? 100_000);
    this.client = new LmClient({
      baseUrl: options.baseUrl,
      apiKey: options.apiKey,
      concurrency: options.concurrency ?? 8,
      timeoutMs: options.timeoutMs ?? 60_000,
      retries: options.retries ?? 4,
      retryBaseMs: options.retryBaseMs ?? 250,
    });
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
      const capabilities = await this.capabilities();
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
            const scores = await this.scoreBatch(batch.map((key) => pairs[pending.get(key)![0]]), capabilities);
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
    const { requests, retries } = this.client.counters;
    return {
      ...this.totals,
      busyMs,
      requests,
      retries,
      requestsPerSecond: seconds > 0 ? requests / seconds : 0,
      tokensPerSecond: seconds > 0 ? this.totals.promptTokens / seconds : 0,
    };
  }

  /** Probes the server once (models, /tokenize, echo with max_tokens 0 / 1, prompt_logprobs) and remembers the answer. */
  capabilities(): Promise<ServerCapabilities> {
    this.capabilitiesPromise ??= this.probe().catch((err) => {
      this.capabilitiesPromise = undefined; // a server that was down may come up: probe again next time
      throw err;
    });
    return this.capabilitiesPromise;
  }

  private async probe(): Promise<ServerCapabilities> {
    const served = await this.servedModels();
    if (!served.includes(this.model)) throw this.modelNotServed(served);
    // A feature is missing when asking for it fails with a 4xx, a 500 (old vLLM crashed on echo + max_tokens 0)
    // or an unusable body; anything else (connection, timeout, 429, 503) is a real failure to report.
    const unsupported = (err: unknown) => err instanceof LmError && (err.kind === 'malformed' || (err.status !== undefined && err.status >= 400 && err.status < 500 && err.status !== 429) || err.status === 500);
    const tokenize = await this.client.postOnce('~/tokenize', { model: this.model, prompt: 'probe', add_special_tokens: true }).then(
      (body) => isObject(body) && Array.isArray(body.tokens),
      (err) => (unsupported(err) ? false : Promise.reject(err)),
    );
    const sample = 'Probe: one two three.';
    const failures: string[] = [];
    const attempt = async (label: string, body: Json, usable: (choice: Json) => boolean): Promise<boolean> => {
      try {
        const response = await this.client.postOnce('/completions', body);
        const choice = isObject(response) && Array.isArray(response.choices) && isObject(response.choices[0]) ? response.choices[0] : undefined;
        if (choice && usable(choice)) return true;
        failures.push(`${label}: answered without prompt log-probabilities`);
      } catch (err) {
        if (!unsupported(err)) throw err;
        failures.push(`${label}: ${(err as Error).message}`);
      }
      return false;
    };
    const echoUsable = (choice: Json) => isObject(choice.logprobs) && Array.isArray(choice.logprobs.token_logprobs) && choice.logprobs.token_logprobs.length > 1;
    for (const maxTokens of [0, 1] as const) {
      if (await attempt(`echo with max_tokens ${maxTokens}`, { model: this.model, prompt: sample, echo: true, logprobs: 1, max_tokens: maxTokens, temperature: 0 }, echoUsable)) {
        return { tokenize, source: 'echo', maxTokens };
      }
    }
    if (tokenize) {
      const ids = await this.tokenize(sample, true);
      const usable = (choice: Json) => Array.isArray(choice.prompt_logprobs) && choice.prompt_logprobs.length === ids.length;
      if (await attempt('prompt_logprobs', { model: this.model, prompt: ids, max_tokens: 1, prompt_logprobs: 0, temperature: 0 }, usable)) {
        return { tokenize, source: 'prompt_logprobs', maxTokens: 1 };
      }
    }
    throw new LmError('unsupported', `LM server at ${this.client.baseUrl} cannot return log-probabilities of prompt tokens, which scoring needs (${failures.join('; ')}${tokenize ? '' : '; no /tokenize for prompt_logprobs'}). Use vLLM's OpenAI server or \`replug-code serve-lm\`.`);
  }

  private async servedModels(): Promise<string[]> {
    const body = await this.client.get('/models');
    if (!isObject(body) || !Array.isArray(body.data)) throw new LmError('malformed', `GET ${this.client.baseUrl}/models did not return a model list; is this an OpenAI-compatible server?`);
    return body.data.map((m) => (isObject(m) ? String(m.id) : '')).filter(Boolean);
  }

  private modelNotServed(served: string[]): LmError {
    return new LmError('model-not-found', `model "${this.model}" not served by ${this.client.baseUrl}; served models: ${served.join(', ') || '(none)'}`, 404);
  }

  private cacheKey(pair: ScorePair): string {
    const { doc, context, continuation } = this.budgets;
    const fields = [this.model, this.separator, doc, context, continuation, this.charsPerToken, pair.doc, pair.context, pair.continuation];
    return createHash('sha256').update(JSON.stringify(fields)).digest('base64');
  }

  private tokenize(text: string, special: boolean): Promise<number[]> {
    if (text === '' && !special) return Promise.resolve([]);
    const key = `${special ? 1 : 0}${text}`;
    let ids = this.tokenCache.get(key);
    if (!ids) {
      ids = this.client.post('~/tokenize', { model: this.model, prompt: text, add_special_tokens: special }).then((body) => {
        if (!isObject(body) || !Array.isArray(body.tokens) || !body.tokens.every(Number.isInteger)) {
          throw new LmError('malformed', `${this.client.baseUrl}/../tokenize answered without a token list`);
        }
        return body.tokens as number[];
      });
      this.tokenCache.set(key, ids);
      ids.catch(() => this.tokenCache.delete(key));
    }
    return ids;
  }

  private async detokenize(ids: number[]): Promise<string> {
    const body = await this.client.post('~/detokenize', { model: this.model, tokens: ids });
    if (!isObject(body) || typeof body.prompt !== 'string') throw new LmError('malformed', `${this.client.baseUrl}/../detokenize answered without a prompt string`);
    return body.prompt;
  }

  private overBudget(tokens: number): LmError {
    return new LmError('over-budget', `continuation has ${tokens} tokens, over its budget of ${this.budgets.continuation}; raise the continuation budget (--continuation-tokens) or use a shorter continuation`);
  }

  /** Token-exact preparation: truncate each part by its tokens, then tokenize prefix and prefix ⊕ y to find y's span. */
  private async prepareIds(pair: ScorePair): Promise<Prepared> {
    const [docIds, contextIds, yIds] = await Promise.all([this.tokenize(pair.doc, false), this.tokenize(pair.context, false), this.tokenize(pair.continuation, false)]);
    if (yIds.length > this.budgets.continuation) throw this.overBudget(yIds.length);
    // Cut parts go back to text through the server's own /detokenize, so the prompt is re-tokenized as one string
    // (tokens of separately tokenized parts would not concatenate: sentencepiece adds a prefix space to each).
    const [doc, context] = await Promise.all([
      docIds.length > this.budgets.doc ? this.detokenize(docIds.slice(0, this.budgets.doc)) : pair.doc,
      contextIds.length > this.budgets.context ? this.detokenize(contextIds.slice(contextIds.length - this.budgets.context)) : pair.context,
    ]);
    const prefix = doc + this.separator + context;
    const [prefixIds, ids] = await Promise.all([this.tokenize(prefix, true), this.tokenize(prefix + pair.continuation, true)]);
    return { ids, yStart: continuationStartByIds(prefixIds, ids) };
  }

  /** Without /tokenize, budgets are applied in characters (charsPerToken per token) and y is located by text_offset. */
  private prepareText(pair: ScorePair): Prepared {
    const doc = pair.doc.slice(0, this.budgets.doc * this.charsPerToken);
    const context = pair.context.slice(Math.max(0, pair.context.length - this.budgets.context * this.charsPerToken));
    const prefix = doc + this.separator + context;
    return { text: prefix + pair.continuation, yStart: prefix.length };
  }

  private async scoreBatch(pairs: ScorePair[], caps: ServerCapabilities): Promise<PairScore[]> {
    const prepared = caps.tokenize ? await Promise.all(pairs.map((p) => this.prepareIds(p))) : pairs.map((p) => this.prepareText(p));
    const prompts = prepared.map((p) => ('ids' in p ? p.ids : p.text));
    const body: Json = caps.source === 'echo'
      ? { model: this.model, prompt: prompts, echo: true, logprobs: 1, max_tokens: caps.maxTokens, temperature: 0 }
      : { model: this.model, prompt: prompts, prompt_logprobs: 0, max_tokens: 1, temperature: 0 };
    let response: unknown;
    try {
      this.totals.completionRequests++;
      response = await this.client.post('/completions', body);
    } catch (err) {
      throw await this.explain(err);
    }
    if (!isObject(response) || !Array.isArray(response.choices) || response.choices.length !== prompts.length) {
      throw new LmError('malformed', `${this.client.baseUrl}/completions answered without one choice per prompt (sent ${prompts.length})`);
    }
    const choices = [...response.choices].sort((a, b) => (isObject(a) && isObject(b) ? Number(a.index) - Number(b.index) : 0));
    const usage = isObject(response.usage) ? Number(response.usage.prompt_tokens) : NaN;
    this.totals.promptTokens += Number.isFinite(usage) ? usage : 0;
    return prepared.map((item, i) => {
      const perToken = this.continuationLogProbs(item, choices[i], caps);
      if (perToken.length === 0) throw new LmError('malformed', `no token of the continuation was found in the server's answer for prompt ${i}`);
      if (perToken.length > this.budgets.continuation) throw this.overBudget(perToken.length);
      return { logProb: perToken.reduce((a, b) => a + b, 0), tokens: perToken.length, perToken };
    });
  }

  /** The log-probs of y's tokens in one choice; any missing or null value is an error, never a silent zero. */
  private continuationLogProbs(item: Prepared, choice: unknown, caps: ServerCapabilities): number[] {
    const malformed = (what: string) => new LmError('malformed', `${this.client.baseUrl}/completions: ${what}`);
    if (!isObject(choice)) throw malformed('a choice is not an object');
    let values: unknown[];
    let start: number;
    let end: number;
    if (caps.source === 'prompt_logprobs') {
      if (!('ids' in item) || !Array.isArray(choice.prompt_logprobs)) throw malformed('prompt_logprobs missing');
      const entries = choice.prompt_logprobs;
      values = item.ids.map((id, k) => {
        const entry = entries[k];
        const chosen = isObject(entry) ? entry[String(id)] : undefined;
        return isObject(chosen) ? chosen.logprob : undefined;
      });
      [start, end] = [item.yStart, item.ids.length];
    } else {
      const logprobs = choice.logprobs;
      if (!isObject(logprobs) || !Array.isArray(logprobs.token_logprobs)) throw malformed('logprobs.token_logprobs missing');
      values = logprobs.token_logprobs;
      if ('ids' in item) {
        [start, end] = [item.yStart, item.ids.length];
      } else {
        const offsets = logprobs.text_offset;
        if (!Array.isArray(offsets) || offsets.length !== values.length || !offsets.every((o) => typeof o === 'number')) throw malformed('logprobs.text_offset missing or not aligned with token_logprobs');
        ({ start, end } = continuationRangeByOffsets(offsets as number[], item.text.length, item.yStart));
      }
    }
    if (values.length < end) throw malformed(`${values.length} token log-probs for a ${end}-token prompt`);
    const span = values.slice(start, end);
    if (!span.every((v) => typeof v === 'number' && Number.isFinite(v))) {
      throw malformed(start === 0 ? 'the continuation starts the prompt, so its first token has no log-prob; give a doc or context' : 'a continuation token has no numeric log-prob');
    }
    return span as number[];
  }

  /** Turns a failed completions call into an error that says what to change. */
  private async explain(err: unknown): Promise<unknown> {
    if (!(err instanceof LmError)) return err;
    if (err.kind === 'model-not-found') {
      const served = await this.servedModels().catch(() => [] as string[]);
      return served.includes(this.model) ? err : this.modelNotServed(served);
    }
    if (err.kind === 'context-length') {
      const { doc, context, continuation } = this.budgets;
      return new LmError('context-length', `prompt is longer than the LM's context (server: ${err.message}); lower the doc budget (${doc}, --doc-tokens) or the context budget (${context}, --context-tokens); continuation budget is ${continuation}`, err.status);
    }
    return err;
  }
}
