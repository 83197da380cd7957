import OpenAI, { APIConnectionError, APIConnectionTimeoutError, APIError, APIUserAbortError } from 'openai';
import { LmError, serverText } from './lm-error';

export interface LmClientOptions {
  /** OpenAI base URL of the server, e.g. http://127.0.0.1:8000/v1 (vLLM serves /tokenize beside /v1). */
  baseUrl: string;
  /** Sent as a bearer token to this server only; without one no Authorization header is sent. */
  apiKey?: string;
  /** Most requests in flight at once. */
  concurrency: number;
  /** Per-request limit of scoring and generation requests. */
  timeoutMs: number;
  /** Limit of the cheap probe requests (models, tokenize, a one-token completion): a hung server shows this soon. */
  probeTimeoutMs?: number;
  /** Extra attempts after a retryable failure (connection, 429, 5xx); a timeout is retried once at most. */
  retries: number;
  /** First backoff delay; doubles per attempt, with full jitter, capped at 30 s. */
  retryBaseMs: number;
}

export interface RequestCounters {
  requests: number;
  retries: number;
}

export interface CallOptions {
  signal?: AbortSignal;
  /** Overrides the client's per-request limit. */
  timeoutMs?: number;
}

type Json = Record<string, unknown>;

const MAX_BACKOFF_MS = 30_000;
const DEFAULT_PROBE_TIMEOUT_MS = 10_000;
/** A server that let one request time out is likely hung or overloaded: one more try, not the full retry budget. */
const TIMEOUT_RETRIES = 1;

/**
 * Error bodies reach the openai client in shapes it cannot read: vLLM before 0.10.1 sent error fields flat
 * ({ message, type, code }) where the client reads only { error: { message } }; a plain web server or proxy answers
 * with an HTML page. Flat bodies are nested; anything that is not JSON is replaced by a one-line description, so a
 * 404 page is never dumped into an error message.
 */
const normaliseErrorBodies: typeof fetch = async (input, init) => {
  const response = await fetch(input, init);
  if (response.ok) return response;
  const type = response.headers.get('content-type') ?? '';
  const text = await response.text();
  let body: unknown;
  try {
    body = type.includes('json') ? JSON.parse(text) : undefined;
  } catch {
    body = undefined;
  }
  const nested =
    body === undefined
      ? { error: { message: describeNonJson(type, text) } }
      : typeof body === 'object' && body !== null && !('error' in body) && 'message' in body
        ? { error: body }
        : body;
  const headers = new Headers(response.headers);
  headers.set('content-type', 'application/json');
  headers.delete('content-length'); // the body changed size
  return new Response(JSON.stringify(nested), { status: response.status, statusText: response.statusText, headers });
};

/** A non-JSON error body in one line: a short plain-text body is quoted, a web page never is. */
function describeNonJson(type: string, text: string): string {
  const kind = type ? `a ${type.split(';')[0]} body` : 'a body';
  const quoted = !/html/i.test(type) && !/^\s*</.test(text) && text.trim() ? ` ("${serverText(text, 120)}")` : '';
  return `answered with ${kind}${quoted} that is not an OpenAI-style JSON error: this does not look like an OpenAI-compatible endpoint`;
}

/**
 * The transport to an OpenAI-compatible LM server: the openai client with its own retries off, so that
 * retrying (bounded, exponential backoff with jitter, only for transient failures), the concurrency bound and
 * error wording are explicit here. Every error names the URL, the status and what to do.
 */
export class LmClient {
  readonly counters: RequestCounters = { requests: 0, retries: 0 };
  private readonly client: OpenAI;
  private readonly baseURL: string;
  private readonly rootUrl: string;
  private active = 0;
  private readonly waiting: (() => void)[] = [];

  constructor(readonly options: LmClientOptions) {
    if (!/^https?:\/\//.test(options.baseUrl)) throw new Error(`LM URL "${options.baseUrl}" must start with http:// or https:// (e.g. http://127.0.0.1:8000/v1)`);
    if (!(options.concurrency >= 1)) throw new Error(`LM concurrency must be at least 1 (got ${options.concurrency})`);
    this.baseURL = options.baseUrl.replace(/\/+$/, '');
    this.rootUrl = this.baseURL.replace(/\/v1$/, '');
    this.client = new OpenAI({
      baseURL: this.baseURL,
      // The client insists on a key; without one the header is removed, so nothing is sent that the user did not give.
      apiKey: options.apiKey || 'unused',
      defaultHeaders: options.apiKey ? undefined : { Authorization: null },
      maxRetries: 0,
      timeout: options.timeoutMs,
      fetch: normaliseErrorBodies,
    });
  }

  get baseUrl(): string {
    return this.options.baseUrl;
  }

  /** Full URL of a path under the base URL (`/completions`) or, with a leading `~`, under the server root (`~/tokenize`). */
  urlOf(path: string): string {
    return path.startsWith('~') ? this.rootUrl + path.slice(1) : this.baseURL + path;
  }

  post(path: string, body: Json, call: CallOptions = {}): Promise<unknown> {
    return this.withRetry('POST', path, () => this.send('post', path, body, call), call);
  }

  get(path: string, call: CallOptions = {}): Promise<unknown> {
    return this.withRetry('GET', path, () => this.send('get', path, undefined, call), call);
  }

  /** One attempt, with the short probe timeout: for probes, where a failure means "not supported" rather than "try again". */
  postOnce(path: string, body: Json, call: CallOptions = {}): Promise<unknown> {
    const timeoutMs = call.timeoutMs ?? this.probeTimeoutMs;
    return this.limited(() => this.send('post', path, body, { ...call, timeoutMs })).catch((err) => {
      throw this.classify(err, 'POST', path, timeoutMs);
    });
  }

  get probeTimeoutMs(): number {
    return this.options.probeTimeoutMs ?? Math.min(DEFAULT_PROBE_TIMEOUT_MS, this.options.timeoutMs);
  }

  /** The openai client resolves paths against its base URL; server-root paths are passed whole. */
  private route(path: string): string {
    return path.startsWith('~') ? this.urlOf(path) : path;
  }

  /**
   * One request. The openai client adds an abort listener to the signal it is given and never removes it, so a
   * generation (k + 1 requests per token, all on the caller's signal) piled them up: each request gets a signal of
   * its own, linked to the caller's only while it runs.
   */
  private async send(method: 'get' | 'post', path: string, body: Json | undefined, call: CallOptions): Promise<unknown> {
    const caller = call.signal;
    const own = new AbortController();
    const forward = () => own.abort(caller?.reason);
    if (caller?.aborted) forward();
    else caller?.addEventListener('abort', forward, { once: true });
    const options = { body, maxRetries: 0, timeout: call.timeoutMs ?? this.options.timeoutMs, signal: own.signal };
    try {
      return await (method === 'get' ? this.client.get(this.route(path), options) : this.client.post(this.route(path), options));
    } finally {
      caller?.removeEventListener('abort', forward);
    }
  }

  private async withRetry<T>(method: string, path: string, request: () => Promise<T>, call: CallOptions): Promise<T> {
    let timeouts = 0;
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.limited(request);
      } catch (err) {
        // A caller that aborted gets its own reason back, as from any API that takes an AbortSignal.
        if (call.signal?.aborted) throw call.signal.reason;
        const error = this.classify(err, method, path, call.timeoutMs ?? this.options.timeoutMs);
        if (error.kind === 'timeout') timeouts++;
        if (!error.retryable || timeouts > TIMEOUT_RETRIES) throw error;
        if (attempt >= this.options.retries) {
          throw new LmError(error.kind, `${error.message} (gave up after ${attempt + 1} attempt${attempt === 0 ? '' : 's'})`, error.status);
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

  private classify(err: unknown, method: string, path: string, timeoutMs: number): LmError {
    if (err instanceof LmError) return err;
    const where = `${method} ${this.urlOf(path)}`;
    if (err instanceof APIUserAbortError) return new LmError('cancelled', `${where} was cancelled`);
    if (err instanceof APIConnectionTimeoutError) {
      return new LmError('timeout', `LM server did not answer ${where} within ${timeoutMs} ms; is it hung or overloaded? Raise --timeout-ms or lower concurrency / batch size`);
    }
    if (err instanceof APIConnectionError) {
      const cause = err.cause instanceof Error ? ((err.cause as Error & { cause?: Error }).cause?.message ?? err.cause.message) : err.message;
      return new LmError('connection', `cannot reach the LM server (${where}: ${serverText(cause)}); is it running (vLLM or \`replug-code serve-lm\`) at that address?`);
    }
    if (err instanceof APIError && err.status !== undefined) {
      const status = err.status;
      const detail = (err.error as { message?: unknown } | undefined)?.message;
      const message = serverText(typeof detail === 'string' ? detail : err.message);
      if (status === 429) {
        const retryAfter = Number(err.headers?.get('retry-after'));
        return new LmError('rate-limit', `${where} is rate-limited (429): ${message}`, status, Number.isFinite(retryAfter) ? retryAfter * 1000 : undefined);
      }
      if (status >= 500) return new LmError('server', `${where} failed on the server (${status}): ${message}`, status);
      if (status === 401 || status === 403) {
        return new LmError('auth', `${where} refused the request (${status}): ${message}; give the server's API key with --lm-api-key (or $REPLUG_LM_API_KEY)`, status);
      }
      if (status === 404) return new LmError('not-found', `${where} answered 404: ${message}`, status);
      if (status === 400 && /context length|maximum context|too long|max_model_len/i.test(message)) {
        return new LmError('context-length', message, status);
      }
      return new LmError('bad-request', `${where} rejected the request (${status}): ${message}`, status);
    }
    if (err instanceof SyntaxError) return new LmError('malformed', `${where} answered with a body that is not valid JSON: ${serverText(err.message)}`);
    return new LmError('malformed', `${where}: unexpected failure: ${serverText(err instanceof Error ? err.message : String(err))}`);
  }
}
