import { LmError } from './lm-error';
import { continuationRangeByOffsets } from './span';

/**
 * Reading the teacher's numbers out of a completions answer, and refusing answers that cannot be true. A teacher
 * that returns positive log-probabilities, or values shifted by one token, would train the retriever on noise
 * without any error showing, so every answer is checked: log-probs finite and ≤ 0, exactly one entry per prompt
 * token (plus the generated ones asked for), no log-prob for the first token, and the echoed tokens equal to the
 * prompt where the server names them by id.
 */

/** A prompt ready to send: token ids with y's first token index, or a string with y's first character index. */
export type Prepared = { ids: number[]; yStart: number } | { text: string; yStart: number };

/** Where prompt log-probs come from and how many tokens each request generates alongside. */
export interface LogProbSource {
  source: 'echo' | 'prompt_logprobs';
  maxTokens: 0 | 1;
}

type Json = Record<string, unknown>;
const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Float rounding can leave a certain token's log-prob a hair above zero; anything larger is impossible. */
const MAX_LOGPROB = 1e-6;

/** vLLM's `return_tokens_as_token_ids` names echoed tokens `token_id:123`. */
const TOKEN_ID = /^token_id:(\d+)$/;

/** The log-probs of y's tokens (item.yStart onwards) in one choice, or an error saying what the server got wrong. */
export function continuationLogProbs(item: Prepared, choice: unknown, caps: LogProbSource, where: string): number[] {
  const { values, promptTokens } = promptLogProbs(item, choice, caps, where);
  const { start, end } = 'ids' in item
    ? { start: item.yStart, end: item.ids.length }
    : continuationRangeByOffsets(offsetsOf(choice), item.text.length, item.yStart);
  if (start === 0) throw new LmError('malformed', `${where}: the continuation starts the prompt, so its first token has no log-prob; give a doc or context`);
  if (end > promptTokens) throw new LmError('malformed', `${where}: ${promptTokens} prompt log-probs for a ${end}-token prompt`);
  if (end <= start) throw new LmError('malformed', `${where}: no token of the continuation was found in the answer`);
  return values.slice(start, end) as number[];
}

/**
 * Every prompt position's log-prob (index 0 is null) after the checks above, and how many prompt tokens the answer
 * covers. Throws a `malformed` LmError naming what was wrong.
 */
export function promptLogProbs(item: Prepared, choice: unknown, caps: LogProbSource, where: string): { values: (number | null)[]; promptTokens: number } {
  const bad = (what: string) => new LmError('malformed', `${where}: ${what}; this server's log-probabilities cannot be used as a training signal`);
  if (!isObject(choice)) throw bad('a choice is not an object');
  let values: unknown[];
  let promptTokens: number;
  if (caps.source === 'prompt_logprobs') {
    if (!('ids' in item)) throw bad('prompt_logprobs needs token-id prompts');
    const entries = choice.prompt_logprobs;
    if (!Array.isArray(entries)) throw bad('prompt_logprobs missing');
    if (entries.length !== item.ids.length) throw bad(`prompt_logprobs has ${entries.length} entries for a ${item.ids.length}-token prompt`);
    values = item.ids.map((id, k) => {
      if (k === 0) return entries[0] === null ? null : NaN;
      const chosen = isObject(entries[k]) ? entries[k][String(id)] : undefined;
      return isObject(chosen) ? chosen.logprob : undefined;
    });
    promptTokens = item.ids.length;
  } else {
    const logprobs = choice.logprobs;
    if (!isObject(logprobs) || !Array.isArray(logprobs.token_logprobs)) throw bad('logprobs.token_logprobs missing');
    values = logprobs.token_logprobs;
    if ('ids' in item) {
      const expected = item.ids.length + caps.maxTokens;
      if (values.length !== expected) {
        throw bad(`token_logprobs has ${values.length} entries for a ${item.ids.length}-token prompt with max_tokens ${caps.maxTokens} (expected ${expected})`);
      }
      checkEchoedIds(logprobs.tokens, item.ids, bad);
      promptTokens = item.ids.length;
    } else {
      const offsets = offsetsOf(choice);
      if (offsets.length !== values.length) throw bad('logprobs.text_offset missing or not aligned with token_logprobs');
      if (offsets.some((o, i) => i > 0 && o < offsets[i - 1])) throw bad('logprobs.text_offset goes backwards');
      promptTokens = offsets.filter((o) => o < item.text.length).length;
      const generated = values.length - promptTokens;
      if (generated !== caps.maxTokens) throw bad(`${generated} tokens past the end of the prompt, with max_tokens ${caps.maxTokens}`);
    }
  }
  if (values[0] !== null && values[0] !== undefined) throw bad(`the first prompt token has a log-prob (${String(values[0])}); answers shifted by a token cannot be scored`);
  for (let i = 1; i < promptTokens; i++) {
    const v = values[i];
    if (typeof v !== 'number' || !Number.isFinite(v)) throw bad(`prompt token ${i} has no numeric log-prob (${JSON.stringify(v)})`);
    if (v > MAX_LOGPROB) throw bad(`prompt token ${i} has log-prob ${v}, above 0 (a probability over 1)`);
  }
  return { values: values.slice(0, promptTokens).map((v, i) => (i === 0 ? null : Math.min(v as number, 0))), promptTokens };
}

/** Where the server names echoed tokens by id (vLLM with return_tokens_as_token_ids), they must be the prompt's. */
function checkEchoedIds(tokens: unknown, ids: number[], bad: (what: string) => LmError): void {
  if (!Array.isArray(tokens) || typeof tokens[0] !== 'string' || !TOKEN_ID.test(tokens[0])) return;
  for (let i = 0; i < ids.length; i++) {
    const m = TOKEN_ID.exec(String(tokens[i]));
    if (!m || Number(m[1]) !== ids[i]) throw bad(`echoed token ${i} is ${String(tokens[i])}, but the prompt has token_id:${ids[i]} there`);
  }
}

function offsetsOf(choice: unknown): number[] {
  const offsets = isObject(choice) && isObject(choice.logprobs) ? choice.logprobs.text_offset : undefined;
  return Array.isArray(offsets) && offsets.every((o) => typeof o === 'number') ? (offsets as number[]) : [];
}
