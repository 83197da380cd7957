import { createHash } from 'node:crypto';
import { Generator } from '../generate/generator';
import { asSimilarities, type PassageRetriever, type SourceSpan } from '../generate/retrieval';
import { Lru } from '../lm/lru';
import type { IndexService } from './index-service';
import type { CompleteParams, CompleteResult, LmEndpoint } from './protocol';

const DEFAULTS = { mode: 'replug' as const, k: 4, maxTokens: 32 };
/** Inline completions wait for nobody: one quick retry, and a request that hangs is given up soon. */
const EDITOR_LM = { retries: 1, retryBaseMs: 100, timeoutMs: 20_000 };

/**
 * Completions for the editor. One generator per LM endpoint is kept, so the server probe and the token caches
 * (passage prefixes repeat from keystroke to keystroke) outlive a single request.
 */
export class CompletionService {
  private readonly generators = new Lru<string, Generator>(4);
  private readonly retriever: PassageRetriever;

  constructor(index: IndexService) {
    // Dense (with the tuned query model when one is in use) when the index has vectors, else BM25: the generator
    // weights passages by similarity, which hybrid's fused ranks are not.
    // A span with one end given runs from the file's start or to its end, as `overlaps` reads it.
    const span = (exclude: SourceSpan | undefined) => ({
      excludePath: exclude?.path,
      excludeLines:
        exclude?.startLine !== undefined || exclude?.endLine !== undefined
          ? ([exclude.startLine ?? 1, exclude.endLine ?? Number.MAX_SAFE_INTEGER] as [number, number])
          : undefined,
    });
    this.retriever = {
      async retrieve(query, k, exclude) {
        const dense = (await index.status()).dense;
        const hits = await index.search({ query, k, mode: dense ? 'dense' : 'lexical', ...span(exclude) });
        return asSimilarities(hits, hits.map((h) => h.score), dense);
      },
      abstains: (query, exclude) => index.abstains({ query, ...span(exclude) }),
    };
  }

  async complete(params: CompleteParams, signal: AbortSignal): Promise<CompleteResult> {
    if (typeof params.prompt !== 'string') throw new Error('replug/complete needs a string `prompt`.');
    const generator = this.generatorFor(params.lm);
    const source = params.path ? { path: params.path, startLine: params.promptLines?.[0], endLine: params.promptLines?.[1] } : undefined;
    const result = await generator.complete(
      {
        prompt: params.prompt,
        mode: params.mode ?? DEFAULTS.mode,
        k: params.k ?? DEFAULTS.k,
        maxTokens: params.maxTokens ?? DEFAULTS.maxTokens,
        stop: params.stop,
        temperature: 0,
        source,
        abstain: params.abstain,
      },
      { signal },
    );
    return {
      text: result.text,
      finishReason: result.finishReason,
      passages: result.passages.map(({ id, path, startLine, endLine, text, similarity, weight }) => ({ id, path, startLine, endLine, text, score: similarity, weight })),
      requests: result.requests,
      abstained: result.abstained,
    };
  }

  private generatorFor(lm: LmEndpoint): Generator {
    if (!lm?.baseUrl || !lm.model) throw new Error('replug/complete needs `lm` with a baseUrl and a model.');
    // The key is part of the identity but never kept in clear beside the map.
    const key = createHash('sha256').update(JSON.stringify([lm.baseUrl, lm.model, lm.apiKey ?? '', lm.concurrency ?? 0])).digest('base64');
    let generator = this.generators.get(key);
    if (!generator) {
      generator = new Generator({ baseUrl: lm.baseUrl, model: lm.model, apiKey: lm.apiKey, concurrency: lm.concurrency, retriever: this.retriever, ...EDITOR_LM });
      this.generators.set(key, generator);
    }
    return generator;
  }
}
