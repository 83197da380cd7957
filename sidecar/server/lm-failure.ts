import { LmError } from '../lm/lm-error';
import type { LmEndpoint } from './protocol';

/**
 * What the user can do about each kind of LM failure, in the editor's terms (the settings to check). Keyed by name
 * rather than by LmErrorKind so that a kind the client learns later gets the general advice, not a type error.
 */
const WHAT_TO_DO: Readonly<Partial<Record<string, string>>> = {
  connection: 'Is the server running? Check replugCode.lm.baseUrl, or run REPLUG: Start LM Server.',
  timeout: 'The server is slow or stuck: check it, or lower replugCode.lm.concurrency.',
  'rate-limit': 'The server is rate-limiting: lower replugCode.lm.concurrency, or try again later.',
  server: 'The server itself failed: see its log, then try again.',
  auth: 'The server refused the credentials: set its key with REPLUG: Set LM API Key (a key goes only to the server it was entered for).',
  'not-found': "Check that replugCode.lm.baseUrl is the server's OpenAI base URL, ending in /v1, and replugCode.lm.model.",
  'model-not-found':
    "Check replugCode.lm.model (the server's /v1/models lists the names it serves) and that replugCode.lm.baseUrl is the server's OpenAI base URL, ending in /v1.",
  'context-length': "The prompt is longer than the model's context: use a model with a longer context, or shorter training queries.",
  'bad-request': 'The server refused the request: REPLUG needs an OpenAI-compatible completions endpoint that returns prompt log-probabilities (echo with logprobs), as vLLM serves.',
  malformed: "The answer is not what an OpenAI-compatible server sends: check that replugCode.lm.baseUrl is the server's OpenAI base URL.",
  unsupported: 'REPLUG needs prompt log-probabilities (echo with logprobs): use vLLM or another server that returns them.',
  'over-budget': 'A continuation is longer than its token budget: use shorter training queries.',
};
const GENERAL_ADVICE = 'Check replugCode.lm.baseUrl and replugCode.lm.model.';

/**
 * How an error of training or evaluation reads in the editor: an LM failure names the endpoint and the model it
 * happened with and says what to do (a bare `404 "nope"` says neither); any other error keeps its message.
 */
export function lmFailureMessage(err: unknown, lm: Pick<LmEndpoint, 'baseUrl' | 'model'>): string {
  const message = err instanceof Error ? err.message : String(err);
  if (!(err instanceof LmError)) return message;
  const where = message.includes(lm.baseUrl) ? `With model "${lm.model}": ` : `The LM endpoint ${lm.baseUrl} (model "${lm.model}") answered: `;
  return `${where}${message.replace(/[.\s]+$/, '')}. ${WHAT_TO_DO[err.kind] ?? GENERAL_ADVICE}`;
}
