import { Tokenizer } from '@huggingface/tokenizers';
import type { TokenizerFiles } from './model-folder';

/** Above this many UTF-16 units per allowed token, the tail cannot survive truncation in any realistic text. */
const CHARS_PER_TOKEN_CAP = 64;
/** countTokens is called for every source line while chunking; lines repeat a lot (`}`, blank, imports). */
const COUNT_CACHE_LIMIT = 50_000;

/**
 * Wraps @huggingface/tokenizers with what the encoder needs: ids truncated to the model's max length with the
 * post-processor's special tokens kept, and a cached token count without special tokens.
 */
export class EncoderTokenizer {
  private readonly tokenizer: Tokenizer;
  /** Special tokens the post-processor appends after the text (BERT: [SEP]); truncation keeps them. */
  private readonly suffixLength: number;
  private readonly counts = new Map<string, number>();

  constructor(
    files: TokenizerFiles,
    readonly maxTokens: number,
  ) {
    this.tokenizer = new Tokenizer(files.json, files.config);
    // Where the text goes between the special tokens: the first position where '' and 'a' encode differently.
    const empty = this.tokenizer.encode('').ids;
    const probe = this.tokenizer.encode('a').ids;
    const prefixLength = empty.findIndex((id, i) => id !== probe[i]);
    this.suffixLength = prefixLength < 0 ? 0 : empty.length - prefixLength;
    if (maxTokens <= empty.length) throw new Error(`max length ${maxTokens} leaves no room next to ${empty.length} special tokens`);
  }

  /** Token ids with special tokens, at most maxTokens long. */
  encode(text: string): number[] {
    const ids = this.tokenizer.encode(text.slice(0, this.maxTokens * CHARS_PER_TOKEN_CAP)).ids;
    if (ids.length <= this.maxTokens) return ids;
    const keep = this.maxTokens - this.suffixLength;
    return [...ids.slice(0, keep), ...ids.slice(ids.length - this.suffixLength)];
  }

  /** Number of tokens the text becomes, without special tokens and without truncation. */
  countTokens(text: string): number {
    let n = this.counts.get(text);
    if (n === undefined) {
      n = this.tokenizer.encode(text, { add_special_tokens: false }).ids.length;
      if (this.counts.size >= COUNT_CACHE_LIMIT) this.counts.clear();
      this.counts.set(text, n);
    }
    return n;
  }
}
