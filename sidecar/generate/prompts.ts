import type { Tally, Upstream, UpstreamCapabilities } from './upstream';

/** Token budgets, as in scoring: a passage keeps its start (signature, names), the context its end (the code at the point). */
export interface PromptBudgets {
  doc: number;
  context: number;
}

/** A prompt as it is sent: token ids when the server tokenizes for us, else text. */
export type Prompt = { ids: number[] } | { text: string };

export function promptLength(prompt: Prompt, charsPerToken: number): number {
  return 'ids' in prompt ? prompt.ids.length : Math.ceil(prompt.text.length / charsPerToken);
}

/**
 * Builds the prompts of the three modes token-exactly where the server has /tokenize: each part is cut by its own
 * tokens, cut parts go back to text through the server's /detokenize, and the whole prompt is tokenized as one
 * string (separately tokenized parts would not concatenate: sentencepiece adds a prefix space to each). Without
 * /tokenize, budgets are applied in characters.
 */
export class PromptBuilder {
  constructor(
    private readonly upstream: Upstream,
    private readonly caps: UpstreamCapabilities,
    private readonly separator: string,
    private readonly budgets: PromptBudgets,
    private readonly charsPerToken: number,
    private readonly tally: Tally,
  ) {}

  /** The context cut to its budget, keeping its end. */
  context(text: string): Promise<string> {
    return this.cut(text, this.budgets.context, 'end');
  }

  /** A passage cut to its budget, keeping its start, with its length in tokens (estimated without /tokenize). */
  async doc(text: string): Promise<{ text: string; tokens: number }> {
    const cut = await this.cut(text, this.budgets.doc, 'start');
    const tokens = this.caps.tokenize ? (await this.upstream.tokenize(cut, false, this.tally)).length : Math.ceil(cut.length / this.charsPerToken);
    return { text: cut, tokens };
  }

  /** docs (already cut) ⊕ separator ⊕ context; with no docs, the context alone. */
  text(docs: readonly string[], context: string): string {
    return docs.length ? docs.join(this.separator) + this.separator + context : context;
  }

  /** That text as it is sent: token ids when the server tokenizes, else the text. */
  async prompt(docs: readonly string[], context: string): Promise<Prompt> {
    const text = this.text(docs, context);
    return this.caps.tokenize ? { ids: await this.upstream.tokenize(text, true, this.tally) } : { text };
  }

  private async cut(text: string, budget: number, keep: 'start' | 'end'): Promise<string> {
    if (!this.caps.tokenize) {
      const chars = budget * this.charsPerToken;
      return keep === 'start' ? text.slice(0, chars) : text.slice(Math.max(0, text.length - chars));
    }
    const ids = await this.upstream.tokenize(text, false, this.tally);
    if (ids.length <= budget) return text;
    return this.upstream.detokenize(keep === 'start' ? ids.slice(0, budget) : ids.slice(ids.length - budget), this.tally);
  }
}
