import { LmClient, type LmClientOptions } from '../lm/lm-client';
import { LmError } from '../lm/lm-error';
import { probeTokenizer, servedModel } from '../lm/server-probe';
import { TokenizerEndpoint } from '../lm/tokenizer-endpoint';

type Json = Record<string, unknown>;

const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);

/** What the generator learned about the server (probed once). */
export interface UpstreamCapabilities {
  /** vLLM's /tokenize and /detokenize: prompts go as token ids and budgets are exact. */
  tokenize: boolean;
  /** Log-prob entries name tokens as `token_id:N` (vLLM's return_tokens_as_token_ids), so chosen ids can be appended. */
  tokenIds: boolean;
  /** The model's context length, when /v1/models says (vLLM's max_model_len). */
  maxModelLen?: number;
}

/** One prompt's next-token distribution: its top-N log-probs by token key, and what the server itself sampled. */
export interface NextTokenTop {
  top: Map<string, number>;
  /** The server's own (greedy) pick; when it ended the sequence (`finish_reason: stop`), that key is an end token. */
  sampled: string | undefined;
  ended: boolean;
}

/** Counts the HTTP requests one completion makes (the client's own counters are shared by concurrent completions). */
export interface Tally {
  requests: number;
}

/** A token key in id mode: `token_id:123` (vLLM's return_tokens_as_token_ids format). */
const TOKEN_ID = /^token_id:(\d+)$/;

export function tokenIdOf(key: string): number | undefined {
  const m = TOKEN_ID.exec(key);
  return m ? Number(m[1]) : undefined;
}

/**
 * The OpenAI-compatible server as the generator uses it, over the project's LmClient (retries, concurrency bound,
 * error wording): the capability probe, vLLM's /tokenize and /detokenize (cached), one-token steps with top-N
 * log-probs, and plain generation requests.
 */
export class Upstream {
  readonly client: LmClient;
  private capabilitiesPromise?: Promise<UpstreamCapabilities>;
  private readonly tokens: TokenizerEndpoint;

  constructor(
    readonly model: string,
    clientOptions: LmClientOptions,
  ) {
    if (!model) throw new Error('LM model name is required (as listed by GET /v1/models on the server)');
    this.client = new LmClient(clientOptions);
    this.tokens = new TokenizerEndpoint(this.client, model, 4096);
  }

  get baseUrl(): string {
    return this.client.baseUrl;
  }

  capabilities(tally?: Tally): Promise<UpstreamCapabilities> {
    this.capabilitiesPromise ??= this.probe(tally).catch((err) => {
      this.capabilitiesPromise = undefined; // a server that was down may come up: probe again next time
      throw err;
    });
    return this.capabilitiesPromise;
  }

  tokenize(text: string, special: boolean, tally: Tally): Promise<number[]> {
    return this.tokens.tokenize(text, special, () => tally.requests++);
  }

  detokenize(ids: readonly number[], tally: Tally): Promise<string> {
    return this.tokens.detokenize(ids, () => tally.requests++);
  }

  /**
   * The text `ids` add after `anchor` (the prompt's last token), whose own text is `anchorText`. Decoding the ids
   * alone would lose what depends on their left neighbour (sentencepiece drops the leading space of a sequence's
   * first piece).
   */
  async textAfter(anchor: readonly number[], anchorText: string, ids: readonly number[], tally: Tally): Promise<string> {
    const after = await this.detokenize([...anchor, ...ids], tally);
    return after.startsWith(anchorText) ? after.slice(anchorText.length) : this.detokenize(ids, tally);
  }

  /** The next-token top-N of each prompt, all requests in flight at once (vLLM batches them and caches their prefixes). */
  async nextTokenTops(prompts: readonly (string | number[])[], n: number, caps: UpstreamCapabilities, tally: Tally, signal?: AbortSignal): Promise<NextTokenTop[]> {
    return Promise.all(
      prompts.map(async (prompt) => {
        tally.requests++;
        const body: Json = { model: this.model, prompt, max_tokens: 1, temperature: 0, logprobs: n };
        if (caps.tokenIds) body.return_tokens_as_token_ids = true;
        const response = await this.client.post('/completions', body, { signal }).catch((err) => Promise.reject(this.explain(err, n)));
        return this.parseTop(response, caps);
      }),
    );
  }

  /** One ordinary generation request (concat and none modes); the server applies `stop` where it can. */
  async generate(prompt: string | number[], params: GenerationParams, tally: Tally, signal?: AbortSignal): Promise<{ text: string; finishReason: string; completionTokens?: number }> {
    tally.requests++;
    const body: Json = { model: this.model, prompt, max_tokens: params.maxTokens, temperature: params.temperature ?? 0 };
    if (params.topP !== undefined) body.top_p = params.topP;
    if (params.seed !== undefined) body.seed = params.seed;
    if (params.stop?.length) body.stop = params.stop;
    const response = await this.client.post('/completions', body, { signal }).catch((err) => Promise.reject(this.explain(err)));
    const choice = isObject(response) && Array.isArray(response.choices) ? response.choices[0] : undefined;
    if (!isObject(choice) || typeof choice.text !== 'string') throw new LmError('malformed', `${this.baseUrl}/completions answered without a choice with text`);
    const usage = isObject(response) && isObject(response.usage) ? response.usage.completion_tokens : undefined;
    return {
      text: choice.text,
      finishReason: typeof choice.finish_reason === 'string' ? choice.finish_reason : 'length',
      completionTokens: Number.isInteger(usage) ? (usage as number) : undefined,
    };
  }

  private parseTop(response: unknown, caps: UpstreamCapabilities): NextTokenTop {
    const malformed = (what: string) => new LmError('malformed', `${this.baseUrl}/completions: ${what}`);
    const choice = isObject(response) && Array.isArray(response.choices) ? response.choices[0] : undefined;
    if (!isObject(choice)) throw malformed('no choice in the answer');
    const logprobs = choice.logprobs;
    const entries = isObject(logprobs) && Array.isArray(logprobs.top_logprobs) ? logprobs.top_logprobs[0] : undefined;
    if (!isObject(entries)) throw malformed('no top_logprobs for the generated token; REPLUG ensembling needs `logprobs` on completions');
    const top = new Map<string, number>();
    for (const [key, value] of Object.entries(entries)) {
      // vLLM clamps -inf to a large negative number; anything positive or not a number is a broken server.
      if (typeof value !== 'number' || !Number.isFinite(value) || value > 1e-4) throw malformed(`log-prob ${String(value)} of token ${JSON.stringify(key)} is not a log-probability`);
      if (caps.tokenIds && tokenIdOf(key) === undefined) throw malformed(`token ${JSON.stringify(key)} is not in the token_id:N form that was asked for`);
      top.set(key, Math.min(0, value));
    }
    if (top.size === 0) throw malformed('an empty top_logprobs entry');
    const tokens = isObject(logprobs) && Array.isArray(logprobs.tokens) ? logprobs.tokens : [];
    const sampled = typeof tokens[0] === 'string' ? tokens[0] : undefined;
    // A stop without a stop string (none is sent) means the sampled token ended the sequence.
    const ended = choice.finish_reason === 'stop' && (choice.stop_reason === null || choice.stop_reason === undefined || typeof choice.stop_reason === 'number');
    return { top, sampled, ended };
  }

  private async probe(tally?: Tally): Promise<UpstreamCapabilities> {
    const count = tally ?? { requests: 0 };
    count.requests += 3; // models, tokenize, detokenize
    const served = await servedModel(this.client, this.model);
    const tokenizer = await probeTokenizer(this.client, this.model, 'a');
    const maxModelLen = served.contextLength ?? tokenizer.contextLength;
    const ids = tokenizer.ids;
    if (!ids) return { tokenize: false, tokenIds: false, maxModelLen };
    count.requests++;
    const answer = await this.client
      .postOnce('/completions', { model: this.model, prompt: ids, max_tokens: 1, temperature: 0, logprobs: 1, return_tokens_as_token_ids: true })
      .catch((err) => Promise.reject(this.explain(err, 1)));
    const entries = isObject(answer) && Array.isArray(answer.choices) && isObject(answer.choices[0]) && isObject(answer.choices[0].logprobs)
      ? (answer.choices[0].logprobs as Json).top_logprobs
      : undefined;
    const first = Array.isArray(entries) && isObject(entries[0]) ? Object.keys(entries[0]) : [];
    if (first.length === 0) throw new LmError('unsupported', `LM server at ${this.baseUrl} returns no top log-probabilities for generated tokens, which REPLUG ensembling needs`);
    return { tokenize: true, tokenIds: first.every((key) => tokenIdOf(key) !== undefined), maxModelLen };
  }

  /** Says what to change when vLLM refuses a request the generator made. */
  private explain(err: unknown, topN?: number): unknown {
    if (!(err instanceof LmError)) return err;
    if (topN !== undefined && err.kind === 'bad-request' && /logprobs/i.test(err.message)) {
      return new LmError('bad-request', `${err.message}; REPLUG asked for the top ${topN} log-probs per step: lower --top-logprobs, or start vLLM with a higher --max-logprobs`, err.status);
    }
    return err;
  }
}

export interface GenerationParams {
  maxTokens: number;
  temperature?: number;
  topP?: number;
  seed?: number;
  stop?: string[];
}
