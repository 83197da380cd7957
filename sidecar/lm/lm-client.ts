import OpenAI, { APIConnectionError, APIConnectionTimeoutError, APIError } from 'openai';
import { LmError } from './lm-error';

export interface LmClientOptions {
  /** OpenAI base URL of the server, e.g. http://127.0.0.1:8000/v1 (vLLM serves /tokenize beside /v1). */
  baseUrl: string;
  apiKey?: string;
  /** Most requests in flight at once. */
  concurrency: number;
  /** Per-request limit. */
  timeoutMs: number;
  /** Extra attempts after a retryable failure (connection, timeout, 429, 5xx). */
  retries: number;
  /** First backoff delay; doubles per attempt, with full jitter, capped at 30 s. */
  retryBaseMs: number;
}

export interface RequestCounters {
  requests: number;
  retries: number;
}

type Json = Record<string, unknown>;

const MAX_BACKOFF_MS = 30_000;

/**
 * vLLM before 0.10.1 sent error fields flat ({ message, type, code }); the openai client reads only the nested
 * { error: { message } } shape and would drop the message, so flat bodies are nested on the way in.
 */
const nestFlatErrors: typeof fetch = async (input, init) => {
  const response = await fetch(input, init);
  if (response.ok || !(response.headers.get('content-type') ?? '').includes('json')) return response;
  const text = await response.text();
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    body = undefined;
  }
  const flat = typeof body === 'object' && body !== null && !('error' in body) && 'message' in body;
  const headers = new Headers(response.headers);
  headers.delete('content-length'); // the body may have changed size
  return new Response(flat ? JSON.stringify({ error: body }) : text, { status: response.status, statusText: response.statusText, headers });
};

/**
 * The transport to an OpenAI-compatible LM server: the openai client with its own retries off, so that
 * retrying (bounded, exponential backoff with jitter, only for transient failures), the concurrency bound and
 * error wording are explicit here.
 */
export class LmClient {
  readonly counters: RequestCounters = { requests: 0, retries: 0 };
  private readonly client: OpenAI;
  private readonly rootUrl: string;
  private active = 0;
  private readonly waiting: (() => void)[] = [];

  constructor(readonly options: LmClientOptions) {
    if (!/^https?:\/\//.test(options.baseUrl)) throw new Error(`LM URL "${options.baseUrl}" must start with http:// or https:// (e.g. http://127.0.0.1:8000/v1)`);
    if (!(options.concurrency >= 1)) throw new Error(`LM concurrency must be at least 1 (got ${options.concurrency})`);
    const baseURL = options.baseUrl.replace(/\/+$/, '');
    this.rootUrl = baseURL.replace(/\/v1$/, '');
    this.client = new OpenAI({ baseURL, apiKey: options.apiKey ?? 'none', maxRetries: 0, timeout: options.timeoutMs, fetch: nestFlatErrors });
  }

  get baseUrl(): string {
    return this.options.baseUrl;
  }

  /** POST to a path under the base URL (`/completions`) or, with a leading `~`, under the server root (`~/tokenize`). */
  post(path: string, body: Json): Promise<unknown> {
    const url = path.startsWith('~') ? this.rootUrl + path.slice(1) : path;
    return this.withRetry(() => this.client.post(url, { body, maxRetries: 0, timeout: this.options.timeoutMs }));
  }

  get(path: string): Promise<unknown> {
    return this.withRetry(() => this.client.get(path, { maxRetries: 0, timeout: this.options.timeoutMs }));
  }

  /** One attempt without retries: for probes, where a failure means "not supported" rather than "try again". */
  postOnce(path: string, body: Json): Promise<unknown> {
    const url = path.startsWith('~') ? this.rootUrl + path.slice(1) : path;
    return this.limited(() => this.client.post(url, { body, maxRetries: 0, timeout: this.options.timeoutMs })).catch((err) => {
      throw this.classify(err);
    });
  }

  private async withRetry<T>(call: () => Promise<T>): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.limited(call);
      } catch (err) {
        const error = this.classify(err);
        if (!error.retryable) throw error;
        if (attempt >= this.options.retries) {
          throw new LmError(error.kind, `${error.message} (gave up after ${attempt + 1} attempts)`, error.status);
        }
        this.counters.retries++;
        const backoff = Math.random() * Math.min(MAX_BACKOFF_MS, this.options.retryBaseMs * 2 ** attempt);
        await new Promise((resolve) => setTimeout(resolve, Math.max(backoff, error.retryAfterMs ?? 0)));
      }
    }
  }

  private async limited<T>(call: () => Promise<T>): Promise<T> {
    if (this.active >= this.options.concurrency) await new Promise<void>((resolve) => this.waiting.push(resolve));
    this.active++;
    this.counters.requests++;
    try {
      return await call();
    } finally {
      this.active--;
      this.waiting.shift()?.();
    }
  }

  private classify(err: unknown): LmError {
    const where = `LM server at ${this.options.baseUrl}`;
    if (err instanceof LmError) return err;
    if (err instanceof APIConnectionTimeoutError) {
      return new LmError('timeout', `${where} did not answer within ${this.options.timeoutMs} ms; raise the timeout or lower concurrency / batch size`);
    }
    if (err instanceof APIConnectionError) {
      const cause = err.cause instanceof Error ? ((err.cause as Error & { cause?: Error }).cause?.message ?? err.cause.message) : err.message;
      return new LmError('connection', `cannot reach ${where}: ${cause}; is the server running (vLLM or \`replug-code serve-lm\`)?`);
    }
    if (err instanceof APIError && err.status !== undefined) {
      const status = err.status;
      const detail = (err.error as { message?: unknown } | undefined)?.message;
      const message = typeof detail === 'string' ? detail : err.message;
      if (status === 429) {
        const retryAfter = Number(err.headers?.get('retry-after'));
        return new LmError('rate-limit', `${where} is rate-limiting (429): ${message}`, status, Number.isFinite(retryAfter) ? retryAfter * 1000 : undefined);
      }
      if (status >= 500) return new LmError('server', `${where} failed (${status}): ${message}`, status);
      if (status === 404) return new LmError('model-not-found', message, status);
      if (status === 400 && /context length|maximum context|too long|max_model_len/i.test(message)) {
        return new LmError('context-length', message, status);
      }
      return new LmError('bad-request', `${where} rejected the request (${status}): ${message}`, status);
    }
    if (err instanceof SyntaxError) return new LmError('malformed', `${where} sent a response that is not valid JSON: ${err.message}`);
    return new LmError('malformed', `${where}: unexpected failure: ${err instanceof Error ? err.message : String(err)}`);
  }
}
