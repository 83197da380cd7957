import http from 'node:http';
import { closeServer, listenOpenAi } from './http-listen';
import type { LanguageModel, TokenScores } from './language-model';

/** A request the client got wrong: answered with an OpenAI-shaped error body and this status. */
class RequestError extends Error {
  constructor(readonly status: number, message: string) {
    super(message);
  }
}

const MAX_BODY_BYTES = 32 * 1024 * 1024;
/** Token pairs (prev, id) key the token-string cache as prev · 2^26 + id: exact for ids below 2^26, far above any vocabulary. */
const TOKEN_KEY_BASE = 2 ** 26;
const TOKEN_STRINGS_KEPT = 1 << 16;
const ERROR_TYPES: Record<number, string> = { 400: 'BadRequestError', 404: 'NotFoundError', 405: 'MethodNotAllowed', 413: 'RequestTooLarge' };

type Body = Record<string, unknown>;

function optionalInt(body: Body, field: string, min: number): number | null {
  const value = body[field];
  if (value === undefined || value === null) return null;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min) throw new RequestError(400, `${field} must be an integer >= ${min}`);
  return value;
}

function isIdArray(value: unknown): value is number[] {
  return Array.isArray(value) && value.length > 0 && value.every((v) => typeof v === 'number' && Number.isInteger(v));
}

/** The k highest-scoring token ids of one distribution, best first. */
function topK(dist: Float32Array, k: number): number[] {
  // The common requests (logprobs 0 or 1) need no insertion sort over the vocabulary.
  if (k <= 0) return [];
  if (k === 1) return [argmax(dist)];
  const best: number[] = [];
  for (let id = 0; id < dist.length; id++) {
    if (best.length === k && dist[id] <= dist[best[k - 1]]) continue;
    let i = best.length === k ? k - 1 : best.length;
    while (i > 0 && dist[best[i - 1]] < dist[id]) i--;
    best.splice(i, 0, id);
    if (best.length > k) best.pop();
  }
  return best;
}

/** Log-probs by position, over full distributions or a model's sparse scores (which know only ids[i + 1] and the best). */
interface PositionScores {
  at(pos: number, id: number): number;
  top(pos: number, k: number): number[];
}

function denseScores(dists: Float32Array[]): PositionScores {
  return { at: (pos, id) => dists[pos][id], top: (pos, k) => topK(dists[pos], k) };
}

function sparseScores(s: TokenScores): PositionScores {
  return {
    at: (pos, id) => (id === s.best[pos] ? s.bestLogProb[pos] : s.next[pos]),
    top: (pos, k) => (k <= 0 ? [] : [s.best[pos]]),
  };
}

function rankOf(dist: Float32Array, id: number): number {
  let rank = 1;
  for (let j = 0; j < dist.length; j++) if (dist[j] > dist[id]) rank++;
  return rank;
}

function argmax(dist: Float32Array): number {
  let best = 0;
  for (let j = 1; j < dist.length; j++) if (dist[j] > dist[best]) best = j;
  return best;
}

/**
 * An OpenAI-compatible server in vLLM's response shapes over any LanguageModel: GET /v1/models, POST
 * /v1/completions (echo, logprobs with top_logprobs and text_offset, prompt_logprobs, greedy generation, string /
 * token-id / batched prompts), POST /tokenize and /detokenize. It lets users dry-run the pipeline without a GPU
 * and gives tests a real HTTP teacher.
 */
export class LmServer {
  private readonly server: http.Server;
  private nextId = 0;
  /**
   * tokenString by (prev, id): a scoring response names one alternative per position, mostly the same few pairs.
   * A plain Map emptied when full, as an LRU's bookkeeping on every hit would cost much of what it saves.
   */
  private readonly tokenStrings = new Map<number, string>();

  constructor(private readonly model: LanguageModel) {
    this.server = http.createServer((req, res) => void this.handle(req, res));
  }

  /** Listens (port 0 picks a free port) and resolves to the OpenAI base URL, e.g. http://127.0.0.1:PORT/v1. */
  listen(port = 0, host = '127.0.0.1'): Promise<string> {
    return listenOpenAi(this.server, port, host);
  }

  close(): Promise<void> {
    return closeServer(this.server);
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    try {
      const route = `${req.method} ${(req.url ?? '').split('?')[0]}`;
      const handlers: Record<string, (body: Body) => unknown> = {
        'POST /v1/completions': (body) => this.completions(body),
        'POST /tokenize': (body) => this.tokenize(body),
        'POST /detokenize': (body) => this.detokenize(body),
      };
      if (route === 'GET /v1/models') return this.send(res, 200, this.models());
      const handler = handlers[route];
      if (!handler) throw new RequestError(404, `no route ${route}; this server answers GET /v1/models, POST /v1/completions, /tokenize, /detokenize`);
      this.send(res, 200, await handler(await readJson(req)));
    } catch (err) {
      const status = err instanceof RequestError ? err.status : 500;
      const message = err instanceof Error ? err.message : String(err);
      // vLLM >= 0.10.1 nests the error object (OpenAI's shape); older versions sent these fields flat.
      this.send(res, status, { error: { message, type: ERROR_TYPES[status] ?? 'InternalServerError', param: null, code: status } });
    }
  }

  private send(res: http.ServerResponse, status: number, body: unknown): void {
    const text = JSON.stringify(body);
    res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
    res.end(text);
  }

  private models() {
    const { name, maxContext } = this.model;
    return { object: 'list', data: [{ id: name, object: 'model', created: 0, owned_by: 'replug-code', root: name, max_model_len: maxContext }] };
  }

  private checkModel(body: Body, required: boolean): void {
    if (body.model === undefined && !required) return;
    if (body.model !== this.model.name) throw new RequestError(404, `The model \`${String(body.model)}\` does not exist.`);
  }

  private tokenize(body: Body) {
    this.checkModel(body, false);
    if (typeof body.prompt !== 'string') throw new RequestError(400, 'prompt must be a string');
    const tokens = this.model.tokenize(body.prompt, body.add_special_tokens !== false);
    const { text, offsets } = body.return_token_strs ? this.model.decode(tokens) : { text: '', offsets: [] };
    const tokenStrs = body.return_token_strs ? offsets.map((o, i) => text.slice(o, offsets[i + 1] ?? text.length)) : null;
    return { count: tokens.length, max_model_len: this.model.maxContext, tokens, token_strs: tokenStrs };
  }

  private detokenize(body: Body) {
    this.checkModel(body, false);
    if (!Array.isArray(body.tokens) || !body.tokens.every((t) => Number.isInteger(t))) throw new RequestError(400, 'tokens must be an array of token ids');
    return { prompt: this.model.decode(body.tokens as number[]).text };
  }

  private async completions(body: Body) {
    this.checkModel(body, true);
    if (body.stream) throw new RequestError(400, 'stream is not supported by this test server');
    if ((optionalInt(body, 'n', 1) ?? 1) !== 1) throw new RequestError(400, 'only n=1 is supported');
    const maxTokens = optionalInt(body, 'max_tokens', 0) ?? 16;
    const logprobs = optionalInt(body, 'logprobs', 0);
    const promptLogprobs = optionalInt(body, 'prompt_logprobs', 0);
    const echo = body.echo === true;
    const prompts = this.promptIds(body.prompt);
    // Every prompt is checked before any is computed, so a bad one fails the request without wasting a forward pass.
    for (const promptIds of prompts) {
      const total = promptIds.length + maxTokens;
      if (total > this.model.maxContext) {
        throw new RequestError(400, `This model's maximum context length is ${this.model.maxContext} tokens. However, you requested ${total} tokens (${promptIds.length} in the prompt, ${maxTokens} in the completion). Please reduce the length of the prompt or completion.`);
      }
    }
    // Scoring requests take the model's sparse path when it has one; anything else needs full distributions.
    const sparse = maxTokens === 0 && (logprobs ?? 0) <= 1 && promptLogprobs === null && this.model.scoreTokens !== undefined;
    const wholePrompt = (echo && logprobs !== null) || promptLogprobs !== null;
    // All prompts at once: a batching model runs them (and other requests' prompts) together.
    const runs = await Promise.all(prompts.map((promptIds) => this.run(promptIds, maxTokens, { sparse, wholePrompt })));
    let promptTokens = 0;
    let completionTokens = 0;
    const choices = prompts.map((promptIds, index) => {
      const { ids, dists, scores } = runs[index];
      promptTokens += promptIds.length;
      completionTokens += ids.length - promptIds.length;
      const first = echo ? 0 : promptIds.length;
      const { text: fullText, offsets: fullOffsets } = this.model.decode(ids);
      const base = fullOffsets[first] ?? fullText.length;
      const text = fullText.slice(base);
      const offsets = fullOffsets.slice(first).map((o) => o - base);
      // vLLM's return_tokens_as_token_ids names tokens `token_id:N`, so tokens with the same text stay apart.
      const asIds = body.return_tokens_as_token_ids === true;
      const tokenText = (i: number) => (asIds ? `token_id:${ids[i]}` : fullText.slice(fullOffsets[i], fullOffsets[i + 1] ?? fullText.length));
      const altText = (i: number, id: number) => (asIds ? `token_id:${id}` : this.tokenString(ids[i - 1], id));
      const positions = Array.from({ length: ids.length - first }, (_, k) => first + k);
      return {
        index,
        text,
        logprobs: logprobs === null ? null : {
          tokens: positions.map(tokenText),
          token_logprobs: positions.map((i) => (i === 0 ? null : scores.at(i - 1, ids[i]))),
          top_logprobs: positions.map((i) => {
            if (i === 0) return null;
            const entries: Record<string, number> = {};
            for (const id of scores.top(i - 1, logprobs)) entries[altText(i, id)] = scores.at(i - 1, id);
            entries[tokenText(i)] = scores.at(i - 1, ids[i]);
            return entries;
          }),
          text_offset: offsets,
        },
        // As vLLM: 'stop' when generation ended at the model's end token.
        finish_reason: ids.length > promptIds.length && ids[ids.length - 1] === this.model.eos ? 'stop' : 'length',
        stop_reason: null,
        prompt_logprobs: promptLogprobs === null ? null : promptIds.map((id, i) => {
          if (i === 0) return null;
          const dist = dists![i - 1];
          const entry: Record<string, { logprob: number; rank: number; decoded_token: string }> = {};
          for (const alt of [id, ...topK(dist, promptLogprobs)]) {
            entry[String(alt)] = { logprob: dist[alt], rank: rankOf(dist, alt), decoded_token: this.tokenString(promptIds[i - 1], alt) };
          }
          return entry;
        }),
      };
    });
    return {
      id: `cmpl-${++this.nextId}`,
      object: 'text_completion',
      created: Math.floor(Date.now() / 1000),
      model: this.model.name,
      choices,
      usage: { prompt_tokens: promptTokens, completion_tokens: completionTokens, total_tokens: promptTokens + completionTokens },
    };
  }

  /** The four prompt forms of the completions API, each as token ids. */
  private promptIds(prompt: unknown): number[][] {
    if (typeof prompt === 'string') return [this.model.tokenize(prompt, true)];
    if (isIdArray(prompt)) return [prompt];
    if (Array.isArray(prompt) && prompt.length > 0 && prompt.every((p) => typeof p === 'string')) return prompt.map((p) => this.model.tokenize(p, true));
    if (Array.isArray(prompt) && prompt.length > 0 && prompt.every(isIdArray)) return prompt;
    throw new RequestError(400, 'prompt must be a string, an array of token ids, or a non-empty list of either');
  }

  /** The tokens of one choice (the prompt, then any generated ones) and their log-probs. */
  private async run(promptIds: number[], maxTokens: number, how: { sparse: boolean; wholePrompt: boolean }): Promise<{ ids: number[]; scores: PositionScores; dists?: Float32Array[] }> {
    if (how.sparse) return { ids: promptIds, scores: sparseScores(await this.model.scoreTokens!(promptIds)) };
    const { ids, dists } = await this.runGreedy(promptIds, maxTokens, how.wholePrompt);
    return { ids, dists, scores: denseScores(dists) };
  }

  /**
   * Appends up to maxTokens argmax tokens (stopping after EOS). dists[i] is the distribution after ids[0..i]: for
   * every prompt position when `wholePrompt` (echo or prompt_logprobs report them), otherwise only from the prompt's
   * last position on, so a model with nextLogProbs runs just the new positions of each step.
   */
  private async runGreedy(promptIds: number[], maxTokens: number, wholePrompt: boolean): Promise<{ ids: number[]; dists: Float32Array[] }> {
    const ids = [...promptIds];
    const dists = wholePrompt ? await this.model.logProbs(promptIds) : [];
    for (let step = 0; step < maxTokens; step++) {
      dists[ids.length - 1] ??= await this.nextLogProbs(ids);
      const next = argmax(dists[ids.length - 1]);
      ids.push(next);
      if (next === this.model.eos) break;
    }
    return { ids, dists };
  }

  private async nextLogProbs(ids: number[]): Promise<Float32Array> {
    if (this.model.nextLogProbs) return this.model.nextLogProbs(ids);
    const dists = await this.model.logProbs(ids);
    return dists[dists.length - 1];
  }

  /** Text of token `id` when it follows `prev`: decoding depends on the neighbour (a leading space after BOS drops). */
  private tokenString(prev: number, id: number): string {
    const cacheable = prev >= 0 && id >= 0 && prev < TOKEN_KEY_BASE && id < TOKEN_KEY_BASE;
    const key = prev * TOKEN_KEY_BASE + id;
    let text = cacheable ? this.tokenStrings.get(key) : undefined;
    if (text === undefined) {
      const decoded = this.model.decode([prev, id]);
      text = decoded.text.slice(decoded.offsets[1]);
      if (cacheable) {
        if (this.tokenStrings.size >= TOKEN_STRINGS_KEPT) this.tokenStrings.clear();
        this.tokenStrings.set(key, text);
      }
    }
    return text;
  }
}

async function readJson(req: http.IncomingMessage): Promise<Body> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY_BYTES) throw new RequestError(413, `request body over ${MAX_BODY_BYTES} bytes`);
    chunks.push(chunk as Buffer);
  }
  try {
    const body: unknown = JSON.parse(Buffer.concat(chunks).toString('utf8'));
    if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new Error('not an object');
    return body as Body;
  } catch (err) {
    throw new RequestError(400, `request body is not a JSON object: ${(err as Error).message}`);
  }
}
