import { readFileSync } from 'node:fs';

export const BOS = 1;
export const EOS = 2;
const BYTE_FALLBACK_BASE = 3; // <0x00> is id 3 in llama2.c tokenizers
const WORD_CACHE_SIZE = 1 << 16;

/** A pending merge of two adjacent symbols; stale when either side changed since it was queued. */
interface Candidate {
  score: number;
  left: Sym;
  right: Sym;
  merged: number;
  leftVersion: number;
  rightVersion: number;
}
interface Sym {
  id: number;
  pos: number; // original order, so ties break leftmost like llama2.c's linear scan
  prev: Sym | null;
  next: Sym | null;
  version: number;
  alive: boolean;
}

/** Binary max-heap on (score, then leftmost position). */
class CandidateHeap {
  private readonly items: Candidate[] = [];
  get size(): number {
    return this.items.length;
  }
  private before(a: Candidate, b: Candidate): boolean {
    return a.score > b.score || (a.score === b.score && a.left.pos < b.left.pos);
  }
  push(c: Candidate): void {
    const items = this.items;
    items.push(c);
    let i = items.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!this.before(items[i], items[parent])) break;
      [items[i], items[parent]] = [items[parent], items[i]];
      i = parent;
    }
  }
  pop(): Candidate {
    const items = this.items;
    const top = items[0];
    const last = items.pop()!;
    if (items.length > 0) {
      items[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1, r = l + 1;
        let best = i;
        if (l < items.length && this.before(items[l], items[best])) best = l;
        if (r < items.length && this.before(items[r], items[best])) best = r;
        if (best === i) break;
        [items[i], items[best]] = [items[best], items[i]];
        i = best;
      }
    }
    return top;
  }
}

/**
 * llama2.c's tokenizer (sentencepiece BPE exported to tokenizer.bin): a dummy-prefix space, one symbol per UTF-8
 * code point with `<0xNN>` byte fallback, then repeatedly merge the adjacent pair whose merged piece scores
 * highest (leftmost on ties). Pieces are kept as latin1 "byte strings" so lookups compare raw bytes.
 */
export class Llama2cTokenizer {
  private readonly pieces: string[];
  private readonly scores: Float32Array;
  private readonly lookup = new Map<string, number>();
  private readonly byteOf: Int16Array; // byte value of each <0xNN> token, -1 otherwise
  /**
   * Tokens of each word met (a space and what follows up to the next space), emptied when full: a plain Map, as an
   * LRU's bookkeeping cost more than it saved. When no piece holds a space after its first character, no merge
   * crosses a word's start, so encoding word by word gives the same tokens as the whole text at once. Undefined for
   * vocabularies where that does not hold.
   */
  private readonly words: Map<string, number[]> | undefined;

  constructor(file: string, vocabSize: number) {
    const bytes = readFileSync(file);
    this.pieces = [];
    this.scores = new Float32Array(vocabSize);
    this.byteOf = new Int16Array(vocabSize).fill(-1);
    let offset = 4; // max_token_length: not needed, merges look pieces up by content
    for (let id = 0; id < vocabSize; id++) {
      if (offset + 8 > bytes.length) throw new Error(`${file} holds fewer than the ${vocabSize} tokens the model expects; is it the model's tokenizer?`);
      this.scores[id] = bytes.readFloatLE(offset);
      const length = bytes.readInt32LE(offset + 4);
      offset += 8;
      const piece = bytes.toString('latin1', offset, offset + length);
      offset += length;
      this.pieces.push(piece);
      if (!this.lookup.has(piece)) this.lookup.set(piece, id);
      const byteMatch = /^<0x([0-9A-Fa-f]{2})>$/.exec(piece);
      if (byteMatch) this.byteOf[id] = parseInt(byteMatch[1], 16);
    }
    const wordwise = this.lookup.has(' ') && this.pieces.every((piece) => piece.indexOf(' ', 1) < 0);
    this.words = wordwise ? new Map() : undefined;
  }

  get vocabSize(): number {
    return this.pieces.length;
  }

  encode(text: string, bos: boolean): number[] {
    const ids: number[] = bos ? [BOS] : [];
    if (text.length === 0) return ids;
    // The dummy prefix: sentencepiece encodes " " + text (when the vocabulary has a space).
    const spaced = this.lookup.has(' ') ? ` ${text}` : text;
    if (!this.words) return [...ids, ...this.merge(this.symbols(spaced))];
    for (let start = 0, end = 1; end <= spaced.length; end++) {
      if (end < spaced.length && spaced[end] !== ' ') continue;
      const word = spaced.slice(start, end);
      let tokens = this.words.get(word);
      if (!tokens) {
        tokens = this.merge(this.symbols(word));
        if (this.words.size >= WORD_CACHE_SIZE) this.words.clear();
        this.words.set(word, tokens);
      }
      for (const id of tokens) ids.push(id);
      start = end;
    }
    return ids;
  }

  /** One symbol per code point: its piece, or its UTF-8 bytes as <0xNN> tokens. */
  private symbols(text: string): number[] {
    const ids: number[] = [];
    for (const codePoint of text) {
      const utf8 = Buffer.from(codePoint, 'utf8');
      const id = this.lookup.get(utf8.toString('latin1'));
      if (id !== undefined) ids.push(id);
      else for (const byte of utf8) ids.push(byte + BYTE_FALLBACK_BASE);
    }
    return ids;
  }

  private merge(ids: number[]): number[] {
    if (ids.length < 2) return ids;
    const syms: Sym[] = ids.map((id, pos) => ({ id, pos, prev: null, next: null, version: 0, alive: true }));
    for (let i = 0; i < syms.length; i++) {
      syms[i].prev = syms[i - 1] ?? null;
      syms[i].next = syms[i + 1] ?? null;
    }
    const heap = new CandidateHeap();
    const consider = (left: Sym | null, right: Sym | null) => {
      if (!left || !right) return;
      const merged = this.lookup.get(this.pieces[left.id] + this.pieces[right.id]);
      if (merged === undefined) return;
      heap.push({ score: this.scores[merged], left, right, merged, leftVersion: left.version, rightVersion: right.version });
    };
    for (let i = 0; i + 1 < syms.length; i++) consider(syms[i], syms[i + 1]);
    while (heap.size > 0) {
      const c = heap.pop();
      const { left, right } = c;
      if (!left.alive || !right.alive || left.next !== right || left.version !== c.leftVersion || right.version !== c.rightVersion) continue;
      left.id = c.merged;
      left.version++;
      right.alive = false;
      left.next = right.next;
      if (right.next) right.next.prev = left;
      consider(left.prev, left);
      consider(left, left.next);
    }
    const out: number[] = [];
    for (let s: Sym | null = syms[0]; s; s = s.next) out.push(s.id);
    return out;
  }

  /**
   * Text of `ids` and the UTF-16 offset where each token starts. Special tokens add nothing; like sentencepiece,
   * the dummy-prefix space of the first piece is dropped. A token that starts inside a multi-byte character
   * gets that character's start offset.
   */
  decode(ids: number[]): { text: string; offsets: number[] } {
    const chunks: Buffer[] = [];
    const byteStarts: number[] = [];
    let length = 0;
    let first = true;
    for (const id of ids) {
      byteStarts.push(length);
      if (id === BOS || id === EOS || id === 0) continue;
      const byte = this.byteOf[id];
      let piece = byte >= 0 ? Buffer.from([byte]) : Buffer.from(this.pieces[id], 'latin1');
      if (first && piece[0] === 0x20) piece = piece.subarray(1);
      first = false;
      chunks.push(piece);
      length += piece.length;
    }
    const all = Buffer.concat(chunks);
    const text = all.toString('utf8');
    // Map byte positions to UTF-16 offsets by walking the characters once.
    const utf16AtByte = new Int32Array(all.length + 1);
    let b = 0, u = 0;
    for (const ch of text) {
      const n = Buffer.byteLength(ch, 'utf8');
      for (let k = 0; k < n && b + k <= all.length; k++) utf16AtByte[b + k] = u;
      b += n;
      u += ch.length;
    }
    for (; b <= all.length; b++) utf16AtByte[b] = u;
    return { text, offsets: byteStarts.map((s) => utf16AtByte[s]) };
  }
}
