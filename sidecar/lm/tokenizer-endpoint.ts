import type { LmClient } from './lm-client';
import { LmError } from './lm-error';
import { Lru } from './lru';

type Json = Record<string, unknown>;
const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * vLLM's /tokenize and /detokenize on the LM server (beside /v1), with tokenizations cached: scoring and generation
 * build token-exact prompts from them, and the same texts (contexts, passages) come back again and again.
 * `onRequest` counts the HTTP requests a caller's work caused (cache hits cost none).
 */
export class TokenizerEndpoint {
  private readonly cache: Lru<string, Promise<number[]>>;

  constructor(
    private readonly client: LmClient,
    private readonly model: string,
    capacity = 20_000,
  ) {
    this.cache = new Lru(capacity);
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

  async detokenize(ids: readonly number[], onRequest?: () => void): Promise<string> {
    if (ids.length === 0) return '';
    onRequest?.();
    const body = await this.client.post('~/detokenize', { model: this.model, tokens: ids });
    if (!isObject(body) || typeof body.prompt !== 'string') throw new LmError('malformed', `${this.client.urlOf('~/detokenize')} answered without a prompt string`);
    return body.prompt;
  }
}
