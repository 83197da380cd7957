/** The attention keys and values of a token sequence, and the distribution that follows it. */
export interface KvEntry {
  ids: number[];
  /** Per layer, [kvHeads, ids.length, headSize]: keys after RoPE, values as projected. */
  keys: Float32Array[];
  values: Float32Array[];
  /** Log-softmax of the token after `ids`. */
  next: Float32Array;
}

/** FNV-1a over the ids of each prefix: hashes[m] covers ids[0..m). */
function prefixHashes(ids: number[]): Uint32Array {
  const hashes = new Uint32Array(ids.length + 1);
  let h = 0x811c9dc5;
  hashes[0] = h;
  for (let i = 0; i < ids.length; i++) {
    h = Math.imul(h ^ ids[i], 0x01000193) >>> 0;
    hashes[i + 1] = h;
  }
  return hashes;
}

function bytesOf(entry: KvEntry): number {
  return entry.keys.reduce((sum, k) => sum + k.byteLength, 0) * 2 + entry.next.byteLength + entry.ids.length * 8;
}

/**
 * Keys and values of recently run sequences, least recently used evicted past a byte budget. Generation asks for
 * the next token of one sequence after another, each one token longer than the last (REPLUG's per-passage prompts
 * d ⊕ x ⊕ y<t, or greedy decoding here); with the prefix's keys and values only the new tokens need a forward pass.
 */
export class PrefixCache {
  private readonly entries = new Map<number, KvEntry>(); // by hash of entry.ids; insertion order is recency
  private bytes = 0;

  constructor(readonly maxBytes: number) {}

  /** The longest cached prefix of `ids` (all of it included), or undefined. */
  longest(ids: number[]): KvEntry | undefined {
    const hashes = prefixHashes(ids);
    for (let m = ids.length; m > 0; m--) {
      const entry = this.entries.get(hashes[m]);
      if (entry && entry.ids.length === m && entry.ids.every((id, i) => id === ids[i])) {
        this.entries.delete(hashes[m]);
        this.entries.set(hashes[m], entry);
        return entry;
      }
    }
    return undefined;
  }

  add(entry: KvEntry): void {
    const size = bytesOf(entry);
    if (size > this.maxBytes) return;
    const hash = prefixHashes(entry.ids)[entry.ids.length];
    const old = this.entries.get(hash);
    if (old) this.bytes -= bytesOf(old);
    this.entries.delete(hash);
    this.entries.set(hash, entry);
    this.bytes += size;
    for (const [key, oldest] of this.entries) {
      if (this.bytes <= this.maxBytes) break;
      this.entries.delete(key);
      this.bytes -= bytesOf(oldest);
    }
  }
}
