import type { LmClient } from './lm-client';
import { LmError, serverText } from './lm-error';
import { promptLogProbs, type LogProbSource, type Prepared } from './logprob-response';

/** What the server turned out to support (probed once per scorer). */
export interface ServerCapabilities extends LogProbSource {
  /** vLLM's /tokenize and /detokenize both work: prompts are sent as token ids and y's span is exact. */
  tokenize: boolean;
  /** The longest prompt + completion the model accepts, when the server says (vLLM's max_model_len). */
  contextLength?: number;
  /** What the probe fell back from, in words, for the user. */
  notes: string[];
}

type Json = Record<string, unknown>;
const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);
const isIdList = (v: unknown): v is number[] => Array.isArray(v) && v.every(Number.isInteger);

const SAMPLE = 'Probe: one two three.';

/**
 * Asks the server, once, what scoring can rely on: the model list (and its context length), /tokenize and
 * /detokenize, then prompt log-probabilities by echo with max_tokens 0, echo with max_tokens 1, or vLLM's
 * prompt_logprobs. A probe answer that cannot be true (see logprob-response.ts) refuses the server outright.
 */
export async function probeServer(client: LmClient, model: string): Promise<ServerCapabilities> {
  const served = await servedModel(client, model);
  const notes: string[] = [];
  const tokenizer = await probeTokenizer(client, model, SAMPLE);
  const contextLength = served.contextLength ?? tokenizer.contextLength;
  if (tokenizer.note) notes.push(tokenizer.note);
  const ids = tokenizer.ids;

  // A feature is missing when asking for it fails with a 4xx, a 500 (old vLLM crashed on echo + max_tokens 0)
  // or an unusable body; anything else (connection, timeout, 429, 503) is a real failure to report.
  const failures: LmError[] = [];
  const optional = async <T>(call: () => Promise<T>): Promise<T | undefined> => {
    try {
      return await call();
    } catch (err) {
      if (!unsupported(err)) throw err;
      failures.push(err);
      return undefined;
    }
  };
  const tokenize = ids !== undefined;
  const item: Prepared = ids ? { ids, yStart: 1 } : { text: SAMPLE, yStart: 1 };
  const prompt = ids ?? SAMPLE;

  const attempt = async (caps: LogProbSource, body: Json): Promise<boolean> => {
    const answer = await optional(() => client.postOnce('/completions', body));
    if (answer === undefined) return false;
    const choice = isObject(answer) && Array.isArray(answer.choices) ? answer.choices[0] : undefined;
    const hasNumbers = caps.source === 'echo'
      ? isObject(choice) && isObject(choice.logprobs) && Array.isArray(choice.logprobs.token_logprobs) && choice.logprobs.token_logprobs.length > 1
      : isObject(choice) && Array.isArray(choice.prompt_logprobs);
    if (!hasNumbers) {
      failures.push(new LmError('unsupported', `${caps.source === 'echo' ? `echo with max_tokens ${caps.maxTokens}` : 'prompt_logprobs'}: answered without prompt log-probabilities`));
      return false;
    }
    // Numbers that cannot be true refuse the server: falling back to another mode would hide a lying teacher.
    promptLogProbs(item, choice, caps, `the probe of ${client.urlOf('/completions')} (${caps.source}, max_tokens ${caps.maxTokens})`);
    return true;
  };
  for (const maxTokens of [0, 1] as const) {
    const caps: LogProbSource = { source: 'echo', maxTokens };
    if (await attempt(caps, { model, prompt, echo: true, logprobs: 1, max_tokens: maxTokens, temperature: 0 })) {
      return { tokenize, ...caps, contextLength, notes };
    }
  }
  if (ids) {
    const caps: LogProbSource = { source: 'prompt_logprobs', maxTokens: 1 };
    if (await attempt(caps, { model, prompt: ids, max_tokens: 1, prompt_logprobs: 0, temperature: 0 })) return { tokenize, ...caps, contextLength, notes };
  }
  const statuses = failures.map((f) => f.status);
  if (failures.length > 0 && statuses.every((s) => s !== undefined && s >= 500)) {
    throw new LmError('server', `the LM server failed every probe with an internal error (${failures[0].message}); check its log`, statuses[0]);
  }
  throw new LmError(
    'unsupported',
    `LM server at ${client.baseUrl} cannot return log-probabilities of prompt tokens, which scoring needs (${failures.map((f) => f.message).join('; ')}${tokenize ? '' : '; no /tokenize for prompt_logprobs'}). Use vLLM's OpenAI server or \`replug-code serve-lm\`.`,
  );
}

/** Whether a failed probe means "not supported" (4xx but 429, a 500, an unusable body) rather than a real failure. */
function unsupported(err: unknown): err is LmError {
  return err instanceof LmError && (err.kind === 'malformed' || (err.status !== undefined && err.status >= 400 && err.status < 500 && err.status !== 429) || err.status === 500);
}

/** The served model's entry in GET /models: refused with the list of served models when it is not there. */
export async function servedModel(client: LmClient, model: string): Promise<{ contextLength?: number }> {
  const served = await servedModels(client);
  const entry = served.find((m) => m.id === model);
  if (!entry) throw modelNotServed(client, model, served.map((m) => String(m.id)));
  return { contextLength: positiveInt(entry.max_model_len) };
}

/**
 * vLLM's /tokenize and /detokenize, which token-exact prompts need both of: the ids of `sample` when both work,
 * the context length /tokenize reports, and a note when only /tokenize does.
 */
export async function probeTokenizer(client: LmClient, model: string, sample: string): Promise<{ ids?: number[]; contextLength?: number; note?: string }> {
  const absentOnFailure = (err: unknown) => (unsupported(err) ? undefined : Promise.reject(err));
  const tokenized = await client.postOnce('~/tokenize', { model, prompt: sample, add_special_tokens: true }).catch(absentOnFailure);
  const ids = isObject(tokenized) && isIdList(tokenized.tokens) && tokenized.tokens.length > 0 ? tokenized.tokens : undefined;
  if (!ids) return {};
  const contextLength = positiveInt((tokenized as Json).max_model_len);
  const detokenized = await client.postOnce('~/detokenize', { model, tokens: ids }).catch(absentOnFailure);
  if (isObject(detokenized) && typeof detokenized.prompt === 'string') return { ids, contextLength };
  return {
    contextLength,
    note: `${client.urlOf('~/detokenize')} is missing or unusable, so prompts go as text: budgets are applied in characters (4 per token) and positions are found by text offsets`,
  };
}

/** The model list of GET /models, with a hint when the base URL is not the API's root. */
export async function servedModels(client: LmClient): Promise<Json[]> {
  let body: unknown;
  try {
    body = await client.get('/models', { timeoutMs: client.probeTimeoutMs });
  } catch (err) {
    if (err instanceof LmError && (err.kind === 'not-found' || err.kind === 'bad-request')) {
      // A non-JSON body already says it does not look like an OpenAI-compatible endpoint: no second question.
      const hint = !/\/v1\/?$/.test(client.baseUrl)
        ? `; OpenAI-compatible servers answer under /v1: try --lm-url ${client.baseUrl.replace(/\/+$/, '')}/v1`
        : /OpenAI-compatible/.test(err.message)
          ? ''
          : '; is this an OpenAI-compatible server?';
      throw new LmError(err.kind, `${err.message}${hint}`, err.status);
    }
    throw err;
  }
  if (!isObject(body) || !Array.isArray(body.data)) {
    throw new LmError('malformed', `GET ${client.urlOf('/models')} did not return a model list; is this an OpenAI-compatible server?`);
  }
  return body.data.filter((m): m is Json => isObject(m) && typeof m.id === 'string');
}

export function modelNotServed(client: LmClient, model: string, served: string[]): LmError {
  const list = served.map((id) => `"${serverText(id, 80)}"`).join(', ');
  return new LmError('model-not-found', `model "${model}" not served by ${client.baseUrl}; served models: ${list || '(none)'}; pass one of them with --lm-model`, 404);
}

function positiveInt(v: unknown): number | undefined {
  return typeof v === 'number' && Number.isInteger(v) && v > 0 ? v : undefined;
}
