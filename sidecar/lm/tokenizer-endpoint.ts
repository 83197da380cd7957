import type { LmClient } from './lm-client';
import { LmError } from './lm-error';
import { Lru } from './lru';

type Json = Record<string, unknown>;
const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * vLLM's /tokenize and /detokenize on the LM server (beside /v1), both cached: scoring and generation build
 * token-exact prompts from them, and the same texts (contexts, passages) and the same cuts of them (a passage at
 * its doc budget, for every completion and every query it is paired with) come back again and again.
 * `onRequest` counts the HTTP requests a caller's work caused (cache hits cost none).
 */
export class TokenizerEndpoint {
  private readonly cache: Lru<string, Promise<number[]>>;
  private readonly texts: Lru<string, Promise<string>>;

  constructor(
    private readonly client: LmClient,
    private readonly model: string,
    capacity = 20_000,
  ) {
    this.cache = new Lru(capacity);
    this.texts = new Lru(Math.ceil(capacity / 10));
  }

  tokenize(text: string, special: boolean, onRequest?: () => void): Promise<number[]> {
    if (text === '' && !special) return Promise.resolve([]);
    const key = `${special ? 1 : 0}${text}`;
    let ids = this.cache.get(key);
    if (!ids) {
      onRequest?.();
      ids = this.client.post('~/tokenize', { model: this.model, prompt: text, add_special_tokens: special }).then((body) => {
        if (!isObject(body) || !Array.isArray(body.tokens) || !body.tokens.every(Number.isInteger)) {
          throw new LmError('malformed', `${this.client.urlOf('~/tokenize')} answered without a token list`);
        }
        return body.tokens as number[];
      });
      this.cache.set(key, ids);
      ids.catch(() => this.cache.delete(key));
    }
    return ids;
  }

  detokenize(ids: readonly number[], onRequest?: () => void): Promise<string> {
    if (ids.length === 0) return Promise.resolve('');
    const key = ids.join(',');
    let text = this.texts.get(key);
    if (!text) {
      onRequest?.();
      text = this.client.post('~/detokenize', { model: this.model, tokens: ids }).then((body) => {
        if (!isObject(body) || typeof body.prompt !== 'string') throw new LmError('malformed', `${this.client.urlOf('~/detokenize')} answered without a prompt string`);
        return body.prompt;
      });
      this.texts.set(key, text);
      text.catch(() => this.texts.delete(key));
    }
    return text;
  }
}
