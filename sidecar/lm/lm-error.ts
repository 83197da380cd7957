/** Why a call to the LM server failed; `retryable` kinds are retried with backoff before surfacing. */
export type LmErrorKind =
  | 'connection' // refused, reset, dropped
  | 'timeout'
  | 'rate-limit' // 429
  | 'server' // 5xx
  | 'model-not-found' // 404 on the model name
  | 'context-length' // 400: prompt longer than the model's context
  | 'bad-request' // other 4xx
  | 'malformed' // not JSON, or JSON missing the fields we need
  | 'unsupported' // server cannot return prompt log-probabilities
  | 'over-budget'; // continuation longer than its token budget

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
