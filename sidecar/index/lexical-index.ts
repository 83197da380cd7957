import MiniSearch, { type Options } from 'minisearch';
import * as path from 'node:path';
import type { Passage } from '../corpus/passage';
import { codeTerms } from './code-terms';

interface LexicalDoc {
  id: string;
  text: string;
  file: string;
}

export interface LexicalHit {
  id: string;
  score: number;
}

// MiniSearch ranks with BM25 (its BM25+ variant) and serialises to JSON; we only supply code-aware terms.
const OPTIONS: Options<LexicalDoc> = {
  fields: ['text', 'file'],
  tokenize: codeTerms,
  processTerm: (term) => term,
  searchOptions: { boost: { file: 0.5 }, combineWith: 'OR' },
};

/** BM25 over passages, kept in step with the dense index by passage id. */
export class LexicalIndex {
  private constructor(private readonly mini: MiniSearch<LexicalDoc>) {}

  static create(): LexicalIndex {
    return new LexicalIndex(new MiniSearch(OPTIONS));
  }

  static load(json: string): LexicalIndex {
    return new LexicalIndex(MiniSearch.loadJSON(json, OPTIONS));
  }

  add(passage: Passage): void {
    this.mini.add({ id: passage.id, text: passage.text, file: path.basename(passage.path) });
  }

  remove(id: string): void {
    // discard is O(1); MiniSearch vacuums the stale postings in the background.
    this.mini.discard(id);
  }

  search(query: string, k: number, accept?: (id: string) => boolean): LexicalHit[] {
    const results = this.mini.search(query, accept ? { filter: (r) => accept(r.id as string) } : undefined);
    return results.slice(0, k).map((r) => ({ id: r.id as string, score: r.score }));
  }

  serialize(): string {
    return JSON.stringify(this.mini);
  }
}
