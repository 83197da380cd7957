import { logSoftmax } from '../eval/ensemble';
import { LmError } from '../lm/lm-error';
import { seededRandom } from '../lsr/training-queries';
import { chooseToken, mixCandidates, type TailPolicy } from './mixture';
import { PromptBuilder, promptLength, type Prompt, type PromptBudgets } from './prompts';
import type { PassageRetriever, RetrievedPassage, SourceSpan } from './retrieval';
import { TextStream } from './text-stream';
import { tokenIdOf, Upstream, type Tally, type UpstreamCapabilities } from './upstream';

/**
 * - replug: one prompt per retrieved passage, next-token distributions mixed by the retrieval weights (REPLUG).
 * - concat: the top passages in one prompt (the usual RAG baseline).
 * - none: the prompt alone.
 */
export type CompletionMode = 'replug' | 'concat' | 'none';
export const COMPLETION_MODES: readonly CompletionMode[] = ['replug', 'concat', 'none'];

export interface CompletionRequest {
  /** The text to continue (code before the point). */
  prompt: string;
  mode: CompletionMode;
  /** Passages retrieved (replug: prompts in the ensemble; concat: passages in the prompt, as many as fit). */
  k: number;
  maxTokens: number;
  stop?: string[];
  /** 0 or absent: greedy. */
  temperature?: number;
  topP?: number;
  /** Seeds sampling (replug: this generator's draws; concat/none: passed to the server). */
  seed?: number;
  /** Where the prompt comes from: passages overlapping it are never retrieved. */
  source?: SourceSpan;
  /** Use no passage (as mode none) where the retriever abstains on the context (PassageRetriever.abstains). */
  abstain?: boolean;
}

export interface UsedPassage extends RetrievedPassage {
  /** λ_d = softmax(similarity/γ) over the retrieved passages (replug), or 1/k for the passages in a concat prompt. */
  weight: number;
}

export type FinishReason = 'stop' | 'length';

export interface Completion {
  text: string;
  finishReason: FinishReason;
  passages: UsedPassage[];
  /** Tokens of the budgeted context prompt (without passages) and of the completion. */
  promptTokens: number;
  completionTokens: number;
  /** HTTP requests this completion sent upstream (tokenize, detokenize, completions). */
  requests: number;
  /** The retriever abstained, so no passage was used. */
  abstained: boolean;
}

export interface CompletionPlan {
  /** The context after its token budget (what retrieval queried with). */
  context: string;
  /** The passages the mode uses, with their weights. */
  passages: UsedPassage[];
  /** The passage part of each prompt: replug one per passage, concat one, none none. */
  docs: string[];
}

export interface CompletionHooks {
  /** Stops generation at the next step; the completion rejects with the signal's reason. */
  signal?: AbortSignal;
  /** Text as it becomes final (held back while it might still turn into a stop sequence). */
  onText?: (delta: string) => void;
}

export interface GeneratorOptions {
  /** OpenAI base URL, e.g. http://127.0.0.1:8000/v1. */
  baseUrl: string;
  model: string;
  apiKey?: string;
  /** Passages for the prompt's context; without one, only mode `none` works. */
  retriever?: PassageRetriever;
  /** Put between passage and context; default "\n" (as in scoring). */
  separator?: string;
  /** Token budgets; defaults 128 each (as in scoring). */
  docTokens?: number;
  contextTokens?: number;
  /** Top log-probs asked per passage and step (N); default 20, vLLM's default --max-logprobs. */
  topLogprobs?: number;
  /** How a token outside a passage's top-N is credited; default `floor` (measured against the exact mixture: README). */
  tail?: TailPolicy;
  /** Temperature γ of the weights softmax(similarity/γ); default 0.1 (as in training). */
  gamma?: number;
  /** Most requests in flight; default 16. */
  concurrency?: number;
  timeoutMs?: number;
  retries?: number;
  retryBaseMs?: number;
  /** Characters per token for budgets when the server has no /tokenize; default 4. */
  charsPerToken?: number;
}

export const DEFAULT_TOP_LOGPROBS = 20;

/**
 * Completes prompts with REPLUG ensembling against an OpenAI-compatible server (vLLM in production): each next
 * token is chosen from Σ_d λ_d · p(token | d ⊕ x) over the top-k passages d retrieved for the context x, with
 * λ = softmax(similarity/γ). A step sends one one-token request per passage, all at once, asking for the top-N
 * log-probs (vLLM caches the shared prompt prefixes, so a step costs little more than one token per passage).
 */
export class Generator {
  readonly upstream: Upstream;
  private readonly separator: string;
  private readonly budgets: PromptBudgets;
  private readonly topN: number;
  private readonly tail: TailPolicy;
  private readonly gamma: number;
  private readonly charsPerToken: number;
  /** Token keys the server ended a sequence with (learned from finish_reason; vLLM does not name its EOS ids). */
  private readonly endKeys = new Set<string>();

  constructor(private readonly options: GeneratorOptions) {
    this.separator = options.separator ?? '\n';
    this.budgets = { doc: options.docTokens ?? 128, context: options.contextTokens ?? 128 };
    for (const [name, value] of Object.entries(this.budgets)) {
      if (!Number.isInteger(value) || value < 0) throw new Error(`${name} token budget must be a non-negative integer (got ${value})`);
    }
    this.topN = options.topLogprobs ?? DEFAULT_TOP_LOGPROBS;
    if (!Number.isInteger(this.topN) || this.topN < 1) throw new Error(`top log-probs must be a positive integer (got ${this.topN})`);
    this.tail = options.tail ?? 'floor';
    this.gamma = options.gamma ?? 0.1;
    if (!(this.gamma > 0)) throw new Error(`gamma must be positive (got ${this.gamma})`);
    this.charsPerToken = options.charsPerToken ?? 4;
    const { baseUrl, apiKey, concurrency = 16, timeoutMs = 60_000, retries = 4, retryBaseMs = 250 } = options;
    this.upstream = new Upstream(options.model, { baseUrl, apiKey, concurrency, timeoutMs, retries, retryBaseMs });
  }

  get model(): string {
    return this.upstream.model;
  }

  async complete(request: CompletionRequest, hooks: CompletionHooks = {}): Promise<Completion> {
    validate(request);
    const signal = hooks.signal;
    signal?.throwIfAborted();
    const tally: Tally = { requests: 0 };
    const { caps, builder, context, docs, passages, abstained } = await this.prepare(request, tally);
    const base = await builder.prompt([], context);
    signal?.throwIfAborted();
    const stream = new TextStream(request.stop);
    const emit = (delta: string) => delta && hooks.onText?.(delta);
    const done = (text: string, tokens: number, finishReason: FinishReason): Completion => ({
      text,
      finishReason,
      passages,
      promptTokens: promptLength(base, this.charsPerToken),
      completionTokens: tokens,
      requests: tally.requests,
      abstained,
    });

    if (request.mode === 'replug' && passages.length > 0) {
      // Token ids go out and chosen ids are appended when the server names tokens by id; otherwise text, and the
      // chosen tokens' strings are appended.
      const idMode = caps.tokenize && caps.tokenIds;
      const prompts = await Promise.all(docs.map((doc) => (idMode ? builder.prompt([doc], context) : { text: builder.text([doc], context) })));
      const logWeights = passages.map((p) => Math.log(p.weight));
      const result = await this.ensemble(prompts, logWeights, base, caps, request, stream, emit, tally, signal);
      return done(result.text, result.tokens, result.finishReason);
    }

    const prompt = docs.length ? await builder.prompt(docs, context) : base;
    const room = caps.maxModelLen === undefined ? request.maxTokens : caps.maxModelLen - promptLength(prompt, this.charsPerToken);
    if (room < 1) throw this.tooLong(promptLength(prompt, this.charsPerToken), caps.maxModelLen!);
    const answer = await this.upstream.generate(
      'ids' in prompt ? prompt.ids : prompt.text,
      { maxTokens: Math.min(request.maxTokens, room), temperature: request.temperature, topP: request.topP, seed: request.seed, stop: request.stop },
      tally,
      signal,
    );
    signal?.throwIfAborted();
    emit(stream.update(answer.text));
    emit(stream.finish(answer.text));
    const tokens = answer.completionTokens ?? Math.ceil(stream.text.length / this.charsPerToken);
    return done(stream.text, tokens, stream.stopped || answer.finishReason === 'stop' ? 'stop' : 'length');
  }

  /**
   * What a completion would send, without generating: the budgeted context, the passages the mode uses with their
   * weights, and the passage part of each prompt (replug: one per passage; concat: the passages joined, best last;
   * none: nothing). Each prompt is that part ⊕ separator ⊕ context, or the context alone. For evaluation.
   */
  async plan(request: CompletionRequest): Promise<CompletionPlan> {
    validate(request);
    const { context, docs, passages } = await this.prepare(request, { requests: 0 });
    return { context, docs: request.mode === 'concat' && docs.length ? [docs.join(this.separator)] : docs, passages };
  }

  get promptSeparator(): string {
    return this.separator;
  }

  /** Budgets the context, retrieves, weights the passages and cuts them to the doc budget (concat: as many as fit). */
  private async prepare(request: CompletionRequest, tally: Tally) {
    const caps = await this.upstream.capabilities(tally);
    const builder = new PromptBuilder(this.upstream, caps, this.separator, this.budgets, this.charsPerToken, tally);
    const context = await builder.context(request.prompt);
    const { passages: retrieved, abstained } = request.mode === 'none' ? { passages: [], abstained: false } : await this.retrieve(context, request);
    if (request.mode === 'replug') {
      const logWeights = logSoftmax(retrieved.map((p) => p.similarity / this.gamma));
      const docs = await Promise.all(retrieved.map(async (p) => (await builder.doc(p.text)).text));
      return { caps, builder, context, abstained, docs, passages: retrieved.map((p, i) => ({ ...p, weight: Math.exp(logWeights[i]) })) };
    }
    if (request.mode === 'concat') return { caps, builder, context, abstained, ...(await this.concatDocs(retrieved, context, builder, caps, request)) };
    return { caps, builder, context, abstained, docs: [] as string[], passages: [] as UsedPassage[] };
  }

  /** The top-k passages for the (budgeted) context, never from the prompt's own span; none where the retriever abstains. */
  private async retrieve(context: string, request: CompletionRequest): Promise<{ passages: RetrievedPassage[]; abstained: boolean }> {
    if (request.k === 0) return { passages: [], abstained: false };
    const retriever = this.options.retriever;
    if (!retriever) throw new Error(`mode ${request.mode} retrieves passages, but no index is open: use mode none, or give an index`);
    // Dense encoders cut long inputs anyway; a bounded query also keeps a pathological prompt cheap.
    const query = context.slice(-MAX_QUERY_CHARS);
    if (request.abstain && (await retriever.abstains?.(query, request.source))) return { passages: [], abstained: true };
    return { passages: await retriever.retrieve(query, request.k, request.source), abstained: false };
  }

  /**
   * concat: the passages for one prompt, best last (nearest the context), each cut to the doc budget; when the
   * model's context length is known, the lowest-ranked passages that do not fit beside the context and
   * max_tokens are left out.
   */
  private async concatDocs(retrieved: RetrievedPassage[], context: string, builder: PromptBuilder, caps: UpstreamCapabilities, request: CompletionRequest) {
    const docs = await Promise.all(retrieved.map((p) => builder.doc(p.text)));
    const contextTokens = promptLength(await builder.prompt([], context), this.charsPerToken);
    let room = caps.maxModelLen === undefined ? Infinity : caps.maxModelLen - contextTokens - request.maxTokens;
    let used = 0;
    while (used < docs.length && docs[used].tokens + 1 <= room) room -= docs[used++].tokens + 1;
    const kept = retrieved.slice(0, used);
    return { docs: docs.slice(0, used).map((d) => d.text).reverse(), passages: kept.map((p) => ({ ...p, weight: 1 / kept.length })) };
  }

  /**
   * The REPLUG decoding loop. Each step sends the k prompts (each with the tokens chosen so far) for one token's
   * top-N and mixes them; in id mode, the text of the tokens chosen so far is decoded (one /detokenize) while the
   * next step's requests are in flight, and a stop sequence found in it discards that step.
   */
  private async ensemble(
    prompts: Prompt[],
    logWeights: number[],
    base: Prompt,
    caps: UpstreamCapabilities,
    request: CompletionRequest,
    stream: TextStream,
    emit: (delta: string) => void,
    tally: Tally,
    signal: AbortSignal | undefined,
  ): Promise<{ text: string; tokens: number; finishReason: FinishReason }> {
    const random = request.seed === undefined ? Math.random : seededRandom(`replug:${request.seed}`);
    const idMode = prompts.every((p) => 'ids' in p);
    const anchor = idMode && 'ids' in base ? base.ids.slice(-1) : [];
    const anchorText = idMode ? await this.upstream.detokenize(anchor, tally) : '';
    const longest = Math.max(...prompts.map((p) => promptLength(p, this.charsPerToken)));
    const chosenIds: number[] = [];
    let chosenText = '';
    let tokens = 0;
    let finishReason: FinishReason = 'length';
    let pendingText: Promise<string> | undefined;

    for (;;) {
      signal?.throwIfAborted();
      const fits = caps.maxModelLen === undefined || longest + tokens + 1 <= caps.maxModelLen;
      const step = tokens < request.maxTokens && fits && finishReason !== 'stop'
        ? this.upstream.nextTokenTops(prompts.map((p) => ('ids' in p ? [...p.ids, ...chosenIds] : p.text + chosenText)), this.topN, caps, tally, signal)
        : undefined;
      step?.catch(() => undefined); // a step discarded after a stop must not surface as an unhandled rejection
      if (pendingText) {
        emit(stream.update(await pendingText));
        if (stream.stopped) return { text: stream.text, tokens, finishReason: 'stop' };
      }
      if (!step) break;
      const tops = await step;
      signal?.throwIfAborted();
      for (const top of tops) if (top.ended && top.sampled !== undefined) this.endKeys.add(top.sampled);
      const key = chooseToken(mixCandidates(tops.map((t, d) => ({ logWeight: logWeights[d], top: t.top })), this.tail), { temperature: request.temperature, topP: request.topP, random });
      if (this.endKeys.has(key)) {
        finishReason = 'stop';
        continue; // one more pass settles the text of the tokens before the end token
      }
      tokens++;
      if (idMode) {
        chosenIds.push(tokenIdOf(key)!);
        pendingText = this.upstream.textAfter(anchor, anchorText, chosenIds, tally);
      } else {
        chosenText += key;
        pendingText = Promise.resolve(chosenText);
      }
    }
    const text = pendingText ? await pendingText : '';
    emit(stream.finish(text));
    return { text: stream.text, tokens, finishReason: stream.stopped ? 'stop' : finishReason };
  }

  private tooLong(promptTokens: number, maxModelLen: number): LmError {
    const { doc, context } = this.budgets;
    return new LmError('context-length', `the prompt has ${promptTokens} tokens and the model's context is ${maxModelLen}: lower the doc budget (${doc}, --doc-tokens), the context budget (${context}, --context-tokens) or k`);
  }
}

/** Characters of the context used as the retrieval query. */
const MAX_QUERY_CHARS = 4000;

function validate(request: CompletionRequest): void {
  if (typeof request.prompt !== 'string') throw new Error('prompt must be a string');
  if (!COMPLETION_MODES.includes(request.mode)) throw new Error(`mode must be one of ${COMPLETION_MODES.join(', ')} (got ${String(request.mode)})`);
  if (!Number.isInteger(request.k) || request.k < 0) throw new Error(`k must be a non-negative integer (got ${request.k})`);
  if (!Number.isInteger(request.maxTokens) || request.maxTokens < 1) throw new Error(`max tokens must be a positive integer (got ${request.maxTokens})`);
  if (request.temperature !== undefined && !(request.temperature >= 0)) throw new Error(`temperature must be >= 0 (got ${request.temperature})`);
  if (request.topP !== undefined && !(request.topP > 0 && request.topP <= 1)) throw new Error(`top_p must be in (0, 1] (got ${request.topP})`);
  if (request.stop !== undefined && (!Array.isArray(request.stop) || !request.stop.every((s) => typeof s === 'string' && s !== ''))) {
    throw new Error('stop must be a list of non-empty strings');
  }
}
