import { createHash, randomUUID, timingSafeEqual } from 'node:crypto';
import http from 'node:http';
import { closeServer, listenOpenAi } from '../lm/http-listen';
import { LmError, type LmErrorKind } from '../lm/lm-error';
import { COMPLETION_MODES, type Completion, type CompletionMode, type CompletionRequest, type Generator } from './generator';
import type { SourceSpan } from './retrieval';

export interface CompletionServerOptions {
  generator: Generator;
  /** Model id clients ask for (GET /v1/models lists it). */
  modelName: string;
  /** What a request gets unless its `replug` field says otherwise. */
  mode: CompletionMode;
  k: number;
  /** Clients must send `Authorization: Bearer <apiKey>`; absent: no authentication. */
  apiKey?: string;
  /** Ceiling of a request's max_tokens. */
  maxTokensLimit?: number;
}

/** A request the client got wrong (or one the upstream failed), answered in OpenAI's error shape. */
class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly type = 'invalid_request_error',
    readonly param: string | null = null,
  ) {
    super(message);
  }
}

type Body = Record<string, unknown>;

const MAX_BODY_BYTES = 4 * 1024 * 1024;

/** How an upstream failure is reported to the client: a gateway error (502) unless these say otherwise. */
const UPSTREAM_STATUS: Partial<Record<LmErrorKind, number>> = {
  timeout: 504,
  'rate-limit': 429,
  // The client's prompt or max_tokens did not fit.
  'context-length': 400,
  'over-budget': 400,
};

/**
 * An OpenAI-compatible completions endpoint in front of the user's LM server: POST /v1/completions (streamed as
 * server-sent events like OpenAI and vLLM, or whole) and GET /v1/models, each completion retrieved from the
 * workspace index and ensembled (REPLUG) by the generator, so an OpenAI client gets it without knowing.
 * Non-standard, optional: a request's `replug` field ({ mode, k, source: { path, startLine, endLine } }) and the
 * response's `replug` field (the passages used, their weights, the upstream requests made).
 */
export class CompletionServer {
  private readonly server: http.Server;
  private readonly keyDigest: Buffer | undefined;

  constructor(private readonly options: CompletionServerOptions) {
    this.keyDigest = options.apiKey ? digest(options.apiKey) : undefined;
    this.server = http.createServer((req, res) => void this.handle(req, res));
  }

  /** Listens (port 0 picks a free one) and resolves to the OpenAI base URL, e.g. http://127.0.0.1:PORT/v1. */
  listen(port: number, host = '127.0.0.1'): Promise<string> {
    return listenOpenAi(this.server, port, host);
  }

  close(): Promise<void> {
    return closeServer(this.server);
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    try {
      const route = `${req.method} ${(req.url ?? '').split('?')[0].replace(/\/+$/, '')}`;
      if (route === 'GET /health') return void res.writeHead(200).end();
      this.authenticate(req);
      if (route === 'GET /v1/models') return this.sendJson(res, 200, await this.models());
      if (route !== 'POST /v1/completions') {
        throw new HttpError(404, `no route ${route}; this server answers GET /v1/models and POST /v1/completions`);
      }
      await this.completions(await readBody(req), res);
    } catch (err) {
      this.sendError(res, toHttpError(err));
    }
  }

  private authenticate(req: http.IncomingMessage): void {
    if (!this.keyDigest) return;
    const header = req.headers.authorization ?? '';
    const given = /^Bearer (.+)$/i.exec(header)?.[1] ?? '';
    // Digests have one length, so the comparison takes the same time whatever the client sent.
    if (!timingSafeEqual(digest(given), this.keyDigest)) throw new HttpError(401, 'missing or wrong API key (send Authorization: Bearer <key>)', 'authentication_error');
  }

  private async models() {
    const caps = await this.options.generator.upstream.capabilities();
    const model = { id: this.options.modelName, object: 'model', created: 0, owned_by: 'replug-code', root: this.options.generator.model };
    return { object: 'list', data: [caps.maxModelLen === undefined ? model : { ...model, max_model_len: caps.maxModelLen }] };
  }

  private async completions(body: Body, res: http.ServerResponse): Promise<void> {
    const request = this.parse(body);
    const stream = body.stream === true;
    const includeUsage = stream && isObject(body.stream_options) && body.stream_options.include_usage === true;
    const id = `cmpl-${randomUUID().replace(/-/g, '')}`;
    const created = Math.floor(Date.now() / 1000);
    const chunk = (text: string, finishReason: string | null) => ({
      id,
      object: 'text_completion',
      created,
      model: this.options.modelName,
      choices: [{ index: 0, text, logprobs: null, finish_reason: finishReason, stop_reason: null }],
    });
    // A client that goes away stops the generation at its next step.
    const abort = new AbortController();
    res.on('close', () => {
      if (!res.writableFinished) abort.abort(new Error('client closed the connection'));
    });
    const send = (data: unknown) => res.write(`data: ${JSON.stringify(data)}\n\n`);
    let started = false;
    const start = () => {
      if (started) return;
      started = true;
      res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache', connection: 'keep-alive' });
    };
    let result: Completion;
    try {
      result = await this.options.generator.complete(request, {
        signal: abort.signal,
        onText: stream
          ? (delta) => {
              start();
              send(chunk(delta, null));
            }
          : undefined,
      });
    } catch (err) {
      if (abort.signal.aborted) return void res.destroy();
      if (!started) throw err;
      // Headers are gone: the error travels as an event, as vLLM sends it (the openai client raises it).
      const e = toHttpError(err);
      send({ error: { message: e.message, type: e.type, param: e.param, code: e.status } });
      return void res.end('data: [DONE]\n\n');
    }
    const usage = { prompt_tokens: result.promptTokens, completion_tokens: result.completionTokens, total_tokens: result.promptTokens + result.completionTokens };
    const replug = {
      mode: request.mode,
      requests: result.requests,
      passages: result.passages.map(({ path, startLine, endLine, similarity, weight }) => ({ path, start_line: startLine, end_line: endLine, similarity, weight })),
    };
    if (!stream) return this.sendJson(res, 200, { ...chunk(result.text, result.finishReason), usage, replug });
    start();
    send({ ...chunk('', result.finishReason), replug });
    if (includeUsage) send({ ...chunk('', null), choices: [], usage });
    res.end('data: [DONE]\n\n');
  }

  /** The completions request as the generator takes it; what it cannot honour is refused, not ignored. */
  private parse(body: Body): CompletionRequest {
    if (body.model !== this.options.modelName) {
      throw new HttpError(404, `The model \`${String(body.model)}\` does not exist; this server serves "${this.options.modelName}"`, 'invalid_request_error', 'model');
    }
    const prompt = Array.isArray(body.prompt) && body.prompt.length === 1 ? body.prompt[0] : body.prompt;
    if (typeof prompt !== 'string') throw new HttpError(400, 'prompt must be a string (one prompt per request; token-id prompts are not supported)', 'invalid_request_error', 'prompt');
    const number = (field: string, fallback: number | undefined, ok: (v: number) => boolean, what: string) => {
      const v = body[field];
      if (v === undefined || v === null) return fallback;
      if (typeof v !== 'number' || !ok(v)) throw new HttpError(400, `${field} must be ${what}`, 'invalid_request_error', field);
      return v;
    };
    const limit = this.options.maxTokensLimit ?? 4096;
    const maxTokens = number('max_tokens', 16, (v) => Number.isInteger(v) && v >= 1 && v <= limit, `an integer from 1 to ${limit}`)!;
    if ((number('n', 1, Number.isInteger, 'an integer') ?? 1) !== 1 || (number('best_of', 1, Number.isInteger, 'an integer') ?? 1) !== 1) {
      throw new HttpError(400, 'only n = 1 (and best_of = 1) is supported', 'invalid_request_error', 'n');
    }
    if (body.echo === true) throw new HttpError(400, 'echo is not supported', 'invalid_request_error', 'echo');
    if (body.logprobs !== undefined && body.logprobs !== null && body.logprobs !== 0) throw new HttpError(400, 'logprobs are not supported: the ensemble has no single model distribution to report', 'invalid_request_error', 'logprobs');
    if (typeof body.suffix === 'string' && body.suffix !== '') throw new HttpError(400, 'suffix (fill-in-the-middle) is not supported', 'invalid_request_error', 'suffix');
    const stop = body.stop === undefined || body.stop === null ? [] : typeof body.stop === 'string' ? [body.stop] : body.stop;
    if (!Array.isArray(stop) || stop.length > 16 || !stop.every((s) => typeof s === 'string' && s !== '')) {
      throw new HttpError(400, 'stop must be a non-empty string or a list of up to 16 of them', 'invalid_request_error', 'stop');
    }
    const replug = isObject(body.replug) ? body.replug : {};
    const mode = replug.mode ?? this.options.mode;
    if (!COMPLETION_MODES.includes(mode as CompletionMode)) throw new HttpError(400, `replug.mode must be one of ${COMPLETION_MODES.join(', ')}`, 'invalid_request_error', 'replug.mode');
    const k = replug.k ?? this.options.k;
    if (typeof k !== 'number' || !Number.isInteger(k) || k < 0 || k > 100) throw new HttpError(400, 'replug.k must be an integer from 0 to 100', 'invalid_request_error', 'replug.k');
    return {
      prompt,
      mode: mode as CompletionMode,
      k,
      maxTokens,
      stop: stop as string[],
      // OpenAI's default temperature is 1.
      temperature: number('temperature', 1, (v) => v >= 0 && v <= 2, 'a number from 0 to 2'),
      topP: number('top_p', undefined, (v) => v > 0 && v <= 1, 'a number in (0, 1]'),
      seed: number('seed', undefined, Number.isInteger, 'an integer'),
      source: parseSource(replug.source),
    };
  }

  private sendJson(res: http.ServerResponse, status: number, body: unknown): void {
    const text = JSON.stringify(body);
    res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
    res.end(text);
  }

  private sendError(res: http.ServerResponse, err: HttpError): void {
    if (res.headersSent) return void res.destroy();
    this.sendJson(res, err.status, { error: { message: err.message, type: err.type, param: err.param, code: err.status } });
  }
}

function parseSource(value: unknown): SourceSpan | undefined {
  if (value === undefined || value === null) return undefined;
  const lines = (v: unknown) => v === undefined || (Number.isInteger(v) && (v as number) >= 1);
  if (!isObject(value) || typeof value.path !== 'string' || !lines(value.startLine) || !lines(value.endLine)) {
    throw new HttpError(400, 'replug.source must be { path, startLine?, endLine? } with 1-based lines', 'invalid_request_error', 'replug.source');
  }
  return { path: value.path, startLine: value.startLine as number | undefined, endLine: value.endLine as number | undefined };
}

function toHttpError(err: unknown): HttpError {
  if (err instanceof HttpError) return err;
  if (err instanceof LmError) {
    const status = UPSTREAM_STATUS[err.kind] ?? 502;
    return new HttpError(status, err.message, status === 400 ? 'invalid_request_error' : 'upstream_error');
  }
  return new HttpError(500, err instanceof Error ? err.message : String(err), 'server_error');
}

function digest(text: string): Buffer {
  return createHash('sha256').update(text).digest();
}

const isObject = (v: unknown): v is Body => typeof v === 'object' && v !== null && !Array.isArray(v);

/** The JSON object body of a request, refused past MAX_BODY_BYTES before it is all read. */
async function readBody(req: http.IncomingMessage): Promise<Body> {
  const declared = Number(req.headers['content-length']);
  if (declared > MAX_BODY_BYTES) throw new HttpError(413, `request body of ${declared} bytes is over the limit of ${MAX_BODY_BYTES}`);
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_BODY_BYTES) throw new HttpError(413, `request body is over the limit of ${MAX_BODY_BYTES} bytes`);
    chunks.push(chunk);
  }
  let body: unknown;
  try {
    body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch (err) {
    throw new HttpError(400, `request body is not JSON: ${(err as Error).message}`);
  }
  if (!isObject(body)) throw new HttpError(400, 'request body must be a JSON object');
  return body;
}
