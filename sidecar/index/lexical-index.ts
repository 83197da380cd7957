import * as path from 'node:path';
import type { Passage } from '../corpus/passage';
import { codeTerms } from './code-terms';
import { PostingPool } from './posting-pool';

export interface LexicalHit {
  id: string;
  score: number;
}

// Okapi BM25 with the usual parameters (Robertson & Zaragoza, 2009).
const K1 = 1.2;
const B = 0.75;
const FORMAT = 'replug-bm25-v1';
/** Dead documents are dropped from the postings when they exceed this share at save time. */
const COMPACT_RATIO = 0.2;

/**
 * BM25 over passages, kept in step with the dense index by passage id. Hand-written rather than MiniSearch: a
 * code index needs exact-term lookup only (no prefix or fuzzy search), and MiniSearch's JSON (de)serialisation
 * rebuilds its radix tree, measured at 1.5 s to load and 0.9 s to save per 10 MB of source — 15 s before the first
 * search on a 10k-file workspace. This index keeps its postings in one typed-array pool (see posting-pool.ts) and saves
 * them as one binary blob.
 * Removal is a tombstone (document frequency and lengths are corrected at once); postings are compacted on save.
 */
export class LexicalIndex {
  private readonly termIds = new Map<string, number>();
  private terms: string[] = [];
  private postings = new PostingPool();
  private docIds: string[] = [];
  private docNums = new Map<string, number>();
  private docLengths = new Int32Array(1024);
  private dead = new Uint8Array(1024);
  private deadCount = 0;
  private df: number[] = [];
  private totalLength = 0;

  static create(): LexicalIndex {
    return new LexicalIndex();
  }

  get size(): number {
    return this.docIds.length - this.deadCount;
  }

  add(passage: Passage): void {
    if (this.docNums.has(passage.id)) return;
    const doc = this.docIds.length;
    this.docIds.push(passage.id);
    this.docNums.set(passage.id, doc);
    this.ensureDocCapacity(doc + 1);
    const counts = termCounts(passage);
    let length = 0;
    for (const [term, tf] of counts) {
      const id = this.termId(term);
      this.postings.append(id, doc, Math.min(tf, 0xffff));
      this.df[id]++;
      length += tf;
    }
    this.docLengths[doc] = length;
    this.totalLength += length;
  }

  /** Removes a passage; its text gives the terms whose document frequency must drop. */
  remove(passage: Passage): void {
    const doc = this.docNums.get(passage.id);
    if (doc === undefined) return;
    this.docNums.delete(passage.id);
    this.dead[doc] = 1;
    this.deadCount++;
    this.totalLength -= this.docLengths[doc];
    for (const term of termCounts(passage).keys()) {
      const id = this.termIds.get(term);
      if (id !== undefined) this.df[id]--;
    }
  }

  search(query: string, k: number, accept?: (id: string) => boolean): LexicalHit[] {
    const live = this.size;
    if (live === 0 || k <= 0) return [];
    const avgLength = this.totalLength / live;
    const scores = new Float64Array(this.docIds.length);
    const touched: number[] = [];
    for (const term of new Set(codeTerms(query))) {
      const id = this.termIds.get(term);
      if (id === undefined || this.df[id] <= 0) continue;
      const df = this.df[id];
      const idf = Math.log(1 + (live - df + 0.5) / (df + 0.5));
      const docs = this.postings.docsOf(id);
      const tfs = this.postings.tfsOf(id);
      for (let i = 0; i < docs.length; i++) {
        const doc = docs[i];
        if (this.dead[doc]) continue;
        const tf = tfs[i];
        const norm = tf + K1 * (1 - B + (B * this.docLengths[doc]) / avgLength);
        if (scores[doc] === 0) touched.push(doc);
        scores[doc] += (idf * tf * (K1 + 1)) / norm;
      }
    }
    return topK(touched, scores, k, (doc) => !accept || accept(this.docIds[doc])).map((doc) => ({ id: this.docIds[doc], score: scores[doc] }));
  }

  /** Binary snapshot: a JSON header (terms, document ids) then the postings and lengths as little-endian arrays. */
  serialize(): Buffer {
    return Buffer.concat(this.serializeParts());
  }

  /** The snapshot as consecutive parts, for writing without first joining them into one more copy. */
  serializeParts(): Uint8Array[] {
    if (this.deadCount > COMPACT_RATIO * this.docIds.length) this.compact();
    const docCount = this.docIds.length;
    const header = Buffer.from(
      JSON.stringify({ format: FORMAT, terms: this.terms, docIds: this.docIds.map((id, doc) => (this.dead[doc] ? '' : id)) }),
    );
    const { offsets, docs, tfs } = this.postings.flatten();
    const postingCount = docs.length;
    const sizes = new Int32Array([header.length, docCount, this.terms.length, postingCount]);
    const pad = Buffer.alloc((4 - (header.length % 4)) % 4);
    return [
      Buffer.from(sizes.buffer),
      header,
      pad,
      Buffer.from(offsets.buffer),
      Buffer.from(docs.buffer),
      Buffer.from(tfs.buffer),
      Buffer.alloc((postingCount % 2) * 2), // so the lengths stay 4-byte aligned
      Buffer.from(this.docLengths.buffer, 0, docCount * 4),
    ];
  }

  /**
   * Reads a snapshot written by `serialize`, checking every count, offset and document number first: garbled
   * postings would otherwise index past the arrays (a search then took minutes) or score the wrong passages.
   */
  static load(data: Buffer): LexicalIndex {
    const fail = (why: string) => new Error(`lexical index is damaged (${why}); run index again to rebuild it`);
    if (data.length < 16) throw fail('too short');
    const bytes = new Uint8Array(data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength));
    const [headerLength, docCount, termCount, postingCount] = new Int32Array(bytes.buffer, 0, 4);
    if (Math.min(headerLength, docCount, termCount, postingCount) < 0 || headerLength > bytes.length - 16) {
      throw fail('negative or oversized counts');
    }
    let at = 16;
    const headerEnd = at + headerLength + ((4 - (headerLength % 4)) % 4);
    const expected = headerEnd + (termCount + 1) * 4 + postingCount * 4 + (postingCount + (postingCount % 2)) * 2 + docCount * 4;
    if (bytes.length !== expected) throw fail(`${bytes.length} bytes, expected ${expected}`);
    const header = parseHeader(Buffer.from(bytes.buffer, at, headerLength), termCount, docCount, fail);
    at = headerEnd;
    const offsets = new Int32Array(bytes.buffer, at, termCount + 1);
    at += (termCount + 1) * 4;
    const docs = new Int32Array(bytes.buffer, at, postingCount);
    at += postingCount * 4;
    const tfs = new Uint16Array(bytes.buffer, at, postingCount);
    at += (postingCount + (postingCount % 2)) * 2;
    const lengths = new Int32Array(bytes.buffer, at, docCount);
    checkPostings(offsets, docs, tfs, lengths, fail);

    const index = new LexicalIndex();
    index.ensureDocCapacity(docCount);
    index.docLengths.set(lengths);
    header.docIds.forEach((id, doc) => {
      index.docIds.push(id);
      if (id === '') {
        index.dead[doc] = 1;
        index.deadCount++;
      } else {
        index.docNums.set(id, doc);
        index.totalLength += lengths[doc];
      }
    });
    header.terms.forEach((term, id) => {
      index.termIds.set(term, id);
      index.terms.push(term);
    });
    // Copies, so later growth never writes into the loaded buffer.
    index.postings = PostingPool.fromFlat(offsets.slice(), docs.slice(), tfs.slice());
    for (let id = 0; id < termCount; id++) {
      let df = 0;
      for (let i = offsets[id]; i < offsets[id + 1]; i++) if (!index.dead[docs[i]]) df++;
      index.df.push(df);
    }
    return index;
  }

  private termId(term: string): number {
    let id = this.termIds.get(term);
    if (id === undefined) {
      id = this.terms.length;
      this.termIds.set(term, id);
      this.terms.push(term);
      this.postings.addTerm();
      this.df.push(0);
    }
    return id;
  }

  private ensureDocCapacity(n: number): void {
    if (n <= this.docLengths.length) return;
    const size = Math.max(n, this.docLengths.length * 2);
    const lengths = new Int32Array(size);
    lengths.set(this.docLengths);
    this.docLengths = lengths;
    const dead = new Uint8Array(size);
    dead.set(this.dead);
    this.dead = dead;
  }

  /** Renumbers live documents densely and drops dead postings and unused terms. */
  private compact(): void {
    const renumber = new Int32Array(this.docIds.length).fill(-1);
    const docIds: string[] = [];
    this.docIds.forEach((id, doc) => {
      if (!this.dead[doc]) {
        renumber[doc] = docIds.length;
        docIds.push(id);
      }
    });
    const lengths = new Int32Array(Math.max(1024, docIds.length));
    this.docIds.forEach((_, doc) => {
      if (renumber[doc] >= 0) lengths[renumber[doc]] = this.docLengths[doc];
    });
    const terms: string[] = [];
    const postings = new PostingPool();
    const df: number[] = [];
    this.termIds.clear();
    for (let id = 0; id < this.terms.length; id++) {
      const docs = this.postings.docsOf(id);
      const tfs = this.postings.tfsOf(id);
      let kept = -1;
      for (let i = 0; i < docs.length; i++) {
        const doc = renumber[docs[i]];
        if (doc < 0) continue;
        if (kept < 0) kept = postings.addTerm();
        postings.append(kept, doc, tfs[i]);
      }
      if (kept < 0) continue;
      this.termIds.set(this.terms[id], kept);
      terms.push(this.terms[id]);
      df.push(postings.count(kept));
    }
    this.terms = terms;
    this.postings = postings;
    this.df = df;
    this.docIds = docIds;
    this.docNums = new Map(docIds.map((id, doc) => [id, doc]));
    this.docLengths = lengths;
    this.dead = new Uint8Array(lengths.length);
    this.deadCount = 0;
  }
}

/** The snapshot's JSON header, with its term and document lists checked against the counts and for repeats. */
function parseHeader(raw: Buffer, termCount: number, docCount: number, fail: (why: string) => Error): { terms: string[]; docIds: string[] } {
  let header: { format?: unknown; terms?: unknown; docIds?: unknown };
  try {
    header = JSON.parse(raw.toString('utf8')) as typeof header;
  } catch {
    throw fail('unreadable header');
  }
  if (header?.format !== FORMAT) throw fail(`format ${String(header?.format)}`);
  const { terms, docIds } = header;
  const strings = (v: unknown): v is string[] => Array.isArray(v) && v.every((x) => typeof x === 'string');
  if (!strings(terms) || !strings(docIds)) throw fail('header lists are not strings');
  if (terms.length !== termCount || docIds.length !== docCount) throw fail('header counts disagree');
  if (new Set(terms).size !== terms.length) throw fail('a term is listed twice');
  const live = docIds.filter((id) => id !== '');
  if (new Set(live).size !== live.length) throw fail('a passage is listed twice');
  return { terms, docIds };
}

/**
 * Offsets start at 0, never decrease and end at the posting count; each term's documents are strictly increasing
 * (they are appended in document order) and below the document count; term frequencies are at least 1, and no
 * document is shorter than the frequencies recorded for it.
 */
function checkPostings(offsets: Int32Array, docs: Int32Array, tfs: Uint16Array, lengths: Int32Array, fail: (why: string) => Error): void {
  const termCount = offsets.length - 1;
  if (offsets[0] !== 0 || offsets[termCount] !== docs.length) throw fail('posting offsets do not span the postings');
  const counted = new Float64Array(lengths.length);
  for (let term = 0; term < termCount; term++) {
    const from = offsets[term];
    const to = offsets[term + 1];
    if (to < from) throw fail(`posting offsets of term ${term} decrease`);
    for (let i = from, previous = -1; i < to; previous = docs[i], i++) {
      const doc = docs[i];
      if (doc <= previous || doc >= lengths.length) throw fail(`term ${term} lists document ${doc} out of order or range`);
      if (tfs[i] === 0) throw fail(`term ${term} has a zero frequency`);
      counted[doc] += tfs[i];
    }
  }
  for (let doc = 0; doc < lengths.length; doc++) {
    if (lengths[doc] < counted[doc]) throw fail(`document ${doc} is shorter than its terms`);
  }
}

/** Terms of a passage's text and file name, with their counts. */
function termCounts(passage: Passage): Map<string, number> {
  const counts = new Map<string, number>();
  for (const term of codeTerms(passage.text)) counts.set(term, (counts.get(term) ?? 0) + 1);
  for (const term of codeTerms(path.basename(passage.path))) counts.set(term, (counts.get(term) ?? 0) + 1);
  return counts;
}

/**
 * The k best accepted documents, best first (ties: lower document number), by a bounded min-heap: a query of
 * common terms touches most of the index, and sorting all of it cost more than the scoring.
 */
function topK(docs: number[], scores: Float64Array, k: number, accept: (doc: number) => boolean): number[] {
  // worse(a, b): a ranks below b.
  const worse = (a: number, b: number) => scores[a] < scores[b] || (scores[a] === scores[b] && a > b);
  const heap: number[] = [];
  const siftDown = (i: number) => {
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < heap.length && worse(heap[l], heap[m])) m = l;
      if (r < heap.length && worse(heap[r], heap[m])) m = r;
      if (m === i) return;
      [heap[i], heap[m]] = [heap[m], heap[i]];
      i = m;
    }
  };
  for (const doc of docs) {
    if (heap.length === k && !worse(heap[0], doc)) continue;
    if (!accept(doc)) continue;
    if (heap.length < k) {
      heap.push(doc);
      for (let i = heap.length - 1; i > 0; ) {
        const parent = (i - 1) >> 1;
        if (!worse(heap[i], heap[parent])) break;
        [heap[i], heap[parent]] = [heap[parent], heap[i]];
        i = parent;
      }
    } else {
      heap[0] = doc;
      siftDown(0);
    }
  }
  return heap.sort((a, b) => (worse(a, b) ? 1 : worse(b, a) ? -1 : 0));
}
