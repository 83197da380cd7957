import { HierarchicalNSW } from 'hnswlib-node';

const M = 16;
const EF_CONSTRUCTION = 200;
const SEED = 100;
const MIN_CAPACITY = 1024;

export interface DenseHit {
  label: number;
  /** Cosine similarity (1 - hnswlib's cosine distance). */
  similarity: number;
}

/**
 * Cosine HNSW over integer labels. hnswlib's 'cosine' space is its inner-product space with every added and query
 * vector normalised first; the index uses the inner-product space and normalises here, bit for bit as hnswlib does,
 * so that a stored vector can be copied into another index unchanged (merging shards: normalising a second time
 * would move its last bits, and with them the graph). Files saved either way are the same. Deleted slots are reused (`allowReplaceDeleted`), so a long-lived index
 * that sees many edits does not grow without bound. hnswlib calls are synchronous and not safe while another
 * call mutates the graph; every call here runs on the caller's single JS thread, so they never overlap.
 */
export class DenseIndex {
  private constructor(
    private readonly hnsw: HierarchicalNSW,
    readonly dim: number,
    private live: number,
  ) {}

  static create(dim: number): DenseIndex {
    const hnsw = new HierarchicalNSW('ip', dim);
    hnsw.initIndex({ maxElements: MIN_CAPACITY, m: M, efConstruction: EF_CONSTRUCTION, randomSeed: SEED, allowReplaceDeleted: true });
    return new DenseIndex(hnsw, dim, 0);
  }

  static async load(file: string, dim: number, liveCount: number): Promise<DenseIndex> {
    const hnsw = new HierarchicalNSW('ip', dim);
    await hnsw.readIndex(file, true);
    if (hnsw.getNumDimensions() !== dim) {
      throw new Error(`vector file ${file} has dimension ${hnsw.getNumDimensions()}, expected ${dim}`);
    }
    return new DenseIndex(hnsw, dim, liveCount);
  }

  get size(): number {
    return this.live;
  }

  add(label: number, vector: Float32Array): void {
    this.addStored(label, normalized(vector));
  }

  /** Adds a vector read from an index's `vector()` (already normalised) exactly as it is. */
  addStored(label: number, vector: Float32Array): void {
    if (vector.length !== this.dim) throw new Error(`vector of dimension ${vector.length} added to a ${this.dim}-d index`);
    this.reserve(1);
    // replaceDeleted: take a slot freed by markDelete when there is one.
    this.hnsw.addPoint(Array.from(vector), label, true);
    this.live++;
  }

  remove(label: number): void {
    this.hnsw.markDelete(label);
    this.live--;
  }

  vector(label: number): Float32Array {
    return Float32Array.from(this.hnsw.getPoint(label));
  }

  /** Grows capacity ahead of `extra` additions; deleted slots are reused first, and growth is geometric because resizeIndex copies. */
  reserve(extra: number): void {
    const needed = Math.max(this.hnsw.getCurrentCount(), this.live + extra);
    if (needed <= this.hnsw.getMaxElements()) return;
    this.hnsw.resizeIndex(Math.max(MIN_CAPACITY, Math.ceil(needed * 1.5)));
  }

  search(query: Float32Array, k: number, accept?: (label: number) => boolean): DenseHit[] {
    const n = Math.min(k, this.live);
    if (n === 0) return [];
    this.hnsw.setEf(Math.max(64, n * 2));
    const result = this.hnsw.searchKnn(Array.from(normalized(query)), n, accept);
    return result.neighbors.map((label, i) => ({ label, similarity: 1 - result.distances[i] }));
  }

  async save(file: string): Promise<void> {
    await this.hnsw.writeIndex(file);
  }
}

/**
 * hnswlib's normalizePoint in float32 arithmetic: a float sum of float squares, sqrtf, float division. Each step here
 * is a double operation rounded to float, which equals the float operation (double has more than twice float's
 * precision), so the result matches hnswlib's bit for bit.
 */
function normalized(vector: Float32Array): Float32Array {
  const f = Math.fround;
  let sum = 0;
  for (const x of vector) sum = f(sum + f(x * x));
  const norm = f(Math.sqrt(sum));
  return norm > 0 ? vector.map((x) => x / norm) : vector;
}
