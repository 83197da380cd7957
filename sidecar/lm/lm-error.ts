/** Why a call to the LM server failed; `retryable` kinds are retried with backoff before surfacing. */
export type LmErrorKind =
  | 'connection' // refused, reset, dropped
  | 'timeout'
  | 'rate-limit' // 429
  | 'server' // 5xx
  | 'auth' // 401 / 403
  | 'not-found' // 404: a missing route, or a model the server does not know
  | 'model-not-found' // the model name is not among the served ones
  | 'context-length' // 400: prompt longer than the model's context
  | 'bad-request' // other 4xx
  | 'malformed' // not JSON, JSON missing the fields we need, or numbers that cannot be true
  | 'unsupported' // server cannot return prompt log-probabilities
  | 'over-budget' // continuation longer than its token budget
  | 'cancelled';

const RETRYABLE: ReadonlySet<LmErrorKind> = new Set(['connection', 'timeout', 'rate-limit', 'server']);

export class LmError extends Error {
  constructor(readonly kind: LmErrorKind, message: string, readonly status?: number, readonly retryAfterMs?: number) {
    super(message);
    this.name = 'LmError';
  }

  get retryable(): boolean {
    return RETRYABLE.has(this.kind);
  }
}

const MAX_SERVER_TEXT = 300;

/**
 * Text a server sent (an error message, a model name) made fit to quote in our own messages: control characters
 * (terminal escape sequences among them) become spaces and it is cut to a few hundred characters, so a hostile or
 * broken server can neither drive the user's terminal nor flood it.
 */
export function serverText(text: string, max = MAX_SERVER_TEXT): string {
  const clean = text.replace(/[\u0000-\u001f\u007f-\u009f]+/g, ' ').trim();
  return clean.length > max ? `${clean.slice(0, max)}…` : clean;
}
