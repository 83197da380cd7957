/**
 * The postings of every term in two shared typed arrays (document numbers and term frequencies). Each term owns one
 * slice; a full slice moves to the end of the pool at twice its capacity. The slices it leaves behind add up to less
 * than its current one, so the pool stays within a small multiple of the live postings (it is rewritten contiguously
 * on save). A pair of typed arrays per term cost about 580 bytes of heap before the first posting: generated code with
 * 1.35 million distinct identifiers (a 52 MB file) needed 790 MB for BM25 alone. Here a term costs 12 bytes of
 * bookkeeping plus 6 bytes per posting slot.
 */
/** Growth of the shared arrays when full: each growth copies them, so geometric, but a smaller factor than 2 wastes less. */
const GROWTH = 1.5;

export class PostingPool {
  private docs: Int32Array = new Int32Array(1024);
  private tfs: Uint16Array = new Uint16Array(1024);
  /** Slots handed out so far (including those of slices that have moved since). */
  private used = 0;
  private starts: Int32Array = new Int32Array(1024);
  private counts: Int32Array = new Int32Array(1024);
  private capacities: Int32Array = new Int32Array(1024);
  private size = 0;

  /** Number of terms (ids 0..termCount-1). */
  get termCount(): number {
    return this.size;
  }

  /** Total postings over all terms. */
  get postingCount(): number {
    let total = 0;
    for (let t = 0; t < this.size; t++) total += this.counts[t];
    return total;
  }

  /** A new term with no postings; returns its id. */
  addTerm(): number {
    if (this.size === this.starts.length) {
      const length = Math.ceil(this.size * GROWTH);
      this.starts = grown(this.starts, length);
      this.counts = grown(this.counts, length);
      this.capacities = grown(this.capacities, length);
    }
    return this.size++;
  }

  append(term: number, doc: number, tf: number): void {
    const n = this.counts[term];
    if (n === this.capacities[term]) this.move(term, Math.max(1, 2 * n));
    const at = this.starts[term] + n;
    this.docs[at] = doc;
    this.tfs[at] = tf;
    this.counts[term] = n + 1;
  }

  count(term: number): number {
    return this.counts[term];
  }

  /** Views of a term's postings; valid until the next append. */
  docsOf(term: number): Int32Array {
    return this.docs.subarray(this.starts[term], this.starts[term] + this.counts[term]);
  }

  tfsOf(term: number): Uint16Array {
    return this.tfs.subarray(this.starts[term], this.starts[term] + this.counts[term]);
  }

  /** Postings in term order as flat arrays with offsets (offsets[t]..offsets[t+1] are term t's). */
  flatten(): { offsets: Int32Array; docs: Int32Array; tfs: Uint16Array } {
    const offsets = new Int32Array(this.size + 1);
    for (let t = 0; t < this.size; t++) offsets[t + 1] = offsets[t] + this.counts[t];
    const total = offsets[this.size];
    const docs = new Int32Array(total);
    const tfs = new Uint16Array(total);
    for (let t = 0; t < this.size; t++) {
      docs.set(this.docsOf(t), offsets[t]);
      tfs.set(this.tfsOf(t), offsets[t]);
    }
    return { offsets, docs, tfs };
  }

  /** A pool over flat arrays as `flatten` returns them (taken over, not copied). */
  static fromFlat(offsets: Int32Array, docs: Int32Array, tfs: Uint16Array): PostingPool {
    const pool = new PostingPool();
    const terms = offsets.length - 1;
    pool.starts = offsets.slice(0, Math.max(1, terms));
    pool.counts = new Int32Array(Math.max(1, terms));
    for (let t = 0; t < terms; t++) pool.counts[t] = offsets[t + 1] - offsets[t];
    pool.capacities = pool.counts.slice();
    pool.size = terms;
    pool.docs = docs.length ? docs : pool.docs;
    pool.tfs = tfs.length ? tfs : pool.tfs;
    pool.used = docs.length;
    return pool;
  }

  private move(term: number, capacity: number): void {
    if (this.used + capacity > this.docs.length) {
      const length = Math.max(Math.ceil(this.docs.length * GROWTH), this.used + capacity);
      this.docs = grown(this.docs, length);
      this.tfs = grown(this.tfs, length);
    }
    const from = this.starts[term];
    const n = this.counts[term];
    this.docs.copyWithin(this.used, from, from + n);
    this.tfs.copyWithin(this.used, from, from + n);
    this.starts[term] = this.used;
    this.capacities[term] = capacity;
    this.used += capacity;
  }
}

/** A longer copy of `array` (`length` is at least its length). */
function grown<T extends Int32Array | Uint16Array>(array: T, length: number): T {
  const next = new (array.constructor as new (n: number) => T)(length);
  next.set(array);
  return next;
}
