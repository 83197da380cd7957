import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LexicalIndex } from '../sidecar/index/lexical-index';
import { PostingPool } from '../sidecar/index/posting-pool';
import { makePassage } from '../sidecar/corpus/chunk';

const doc = (id: string, text: string) => ({ ...makePassage(`/w/${id}.txt`, 1, 1, text), id });

/** Okapi BM25 (k1 1.2, b 0.75) computed directly from its definition, for comparison. */
function bm25(docs: string[][], query: string[], target: number): number {
  const n = docs.length;
  const avg = docs.reduce((s, d) => s + d.length, 0) / n;
  let score = 0;
  for (const term of new Set(query)) {
    const df = docs.filter((d) => d.includes(term)).length;
    const tf = docs[target].filter((t) => t === term).length;
    if (tf === 0) continue;
    const idf = Math.log(1 + (n - df + 0.5) / (df + 0.5));
    score += (idf * tf * 2.2) / (tf + 1.2 * (0.25 + (0.75 * docs[target].length) / avg));
  }
  return score;
}

test('scores are Okapi BM25 and the best match ranks first', () => {
  const index = LexicalIndex.create();
  // File names are "a.txt" etc.: their terms (a, txt) count as document terms too.
  const texts = ['alpha beta beta', 'beta gamma', 'gamma delta delta delta'];
  texts.forEach((t, i) => index.add(doc('abc'[i], t)));
  const terms = texts.map((t, i) => [...t.split(' '), 'abc'[i], 'txt']);
  const hits = index.search('delta beta', 10);
  assert.deepEqual(hits.map((h) => h.id), ['c', 'a', 'b']);
  for (const hit of hits) {
    const expected = bm25(terms, ['delta', 'beta'], 'abc'.indexOf(hit.id));
    assert.ok(Math.abs(hit.score - expected) < 1e-9, `${hit.id}: ${hit.score} vs ${expected}`);
  }
  assert.deepEqual(index.search('delta beta', 1).map((h) => h.id), ['c']);
  assert.deepEqual(index.search('delta beta', 10, (id) => id !== 'c').map((h) => h.id), ['a', 'b']);
  assert.deepEqual(index.search('nothing here', 10), []);
});

test('removal takes a passage out of results and out of the statistics', () => {
  const index = LexicalIndex.create();
  const a = doc('a', 'shared unique');
  const b = doc('b', 'shared');
  index.add(a);
  index.add(b);
  index.remove(a);
  assert.equal(index.size, 1);
  assert.deepEqual(index.search('unique', 10), []);
  const fresh = LexicalIndex.create();
  fresh.add(b);
  assert.deepEqual(index.search('shared', 10), fresh.search('shared', 10));
});

test('a saved index loads back with the same results, also after removals and compaction', () => {
  const index = LexicalIndex.create();
  const passages = Array.from({ length: 50 }, (_, i) => doc(`p${i}`, `function handler${i % 7}(request) { return route${i % 3}(request); }`));
  passages.forEach((p) => index.add(p));
  passages.slice(0, 20).forEach((p) => index.remove(p)); // 40% dead: compacted on save
  const loaded = LexicalIndex.load(index.serialize());
  for (const q of ['handler3', 'route1 request', 'return']) {
    assert.deepEqual(loaded.search(q, 10), index.search(q, 10));
  }
  assert.equal(loaded.size, 30);
  loaded.add(doc('new', 'handler3 fresh'));
  assert.equal(loaded.search('fresh', 1)[0].id, 'new');
});

test('a damaged file is a clear error', () => {
  const bytes = LexicalIndex.create().serialize();
  assert.throws(() => LexicalIndex.load(bytes.subarray(0, bytes.length - 1)), /damaged.*run index again/);
  assert.throws(() => LexicalIndex.load(Buffer.alloc(3)), /damaged/);
});

/** Byte ranges of a snapshot's arrays, from its four leading counts (see LexicalIndex.serialize). */
function snapshotLayout(bytes: Buffer) {
  const [headerLength, docCount, termCount, postingCount] = [0, 4, 8, 12].map((at) => bytes.readInt32LE(at));
  const offsets = 16 + headerLength + ((4 - (headerLength % 4)) % 4);
  const docs = offsets + (termCount + 1) * 4;
  const tfs = docs + postingCount * 4;
  return { docCount, termCount, postingCount, offsets, docs, tfs };
}

test('garbled postings are refused on load, never searched', () => {
  const index = LexicalIndex.create();
  for (let i = 0; i < 200; i++) index.add(doc(`p${i}`, `function handler${i % 7}(request) { return route${i % 3}(request${i}); }`));
  const good = index.serialize();
  const layout = snapshotLayout(good);
  const damaged = (edit: (bytes: Buffer) => void) => {
    const bytes = Buffer.from(good);
    edit(bytes);
    return () => LexicalIndex.load(bytes);
  };
  assert.throws(damaged((b) => b.writeInt32LE(1 << 30, layout.offsets + 4 * layout.termCount)), /damaged \(posting offsets do not span/);
  assert.throws(damaged((b) => b.writeInt32LE(-3, layout.offsets + 4)), /offsets of term 0 decrease/);
  assert.throws(damaged((b) => b.writeInt32LE(-1, layout.docs + 8)), /out of order or range/);
  assert.throws(damaged((b) => b.writeInt32LE(layout.docCount, layout.docs)), /out of order or range/);
  assert.throws(damaged((b) => b.writeUInt16LE(0, layout.tfs + 2)), /zero frequency/);
  assert.throws(damaged((b) => b.writeUInt16LE(60_000, layout.tfs)), /shorter than its terms/);
  assert.throws(damaged((b) => b.writeInt32LE(-5, 0)), /negative or oversized counts/);
  // 64 random bytes somewhere in the postings (what made every search take minutes), 50 seeded placements.
  let x = 7;
  const next = () => ((x = (x * 1103515245 + 12345) >>> 0), x >>> 8);
  const span = layout.postingCount * 6 - 64;
  for (let trial = 0; trial < 50; trial++) {
    const at = layout.docs + (next() % span);
    assert.throws(damaged((b) => { for (let i = 0; i < 64; i++) b[at + i] = next() & 0xff; }), /lexical index is damaged/, `bytes at ${at}`);
  }
  assert.equal(LexicalIndex.load(good).search('handler3', 5).length, 5);
});

test('top-k selection over many matches equals a full sort, with a filter', () => {
  const index = LexicalIndex.create();
  const words = ['alpha', 'beta', 'gamma', 'delta', 'epsilon'];
  let seed = 7;
  const rand = () => ((seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648);
  for (let i = 0; i < 500; i++) {
    index.add(doc(`d${i}`, Array.from({ length: 1 + Math.floor(rand() * 12) }, () => words[Math.floor(rand() * words.length)]).join(' ')));
  }
  const all = index.search('alpha delta', 1000);
  const accept = (id: string) => Number(id.slice(1)) % 3 !== 0;
  const expected = all.filter((h) => accept(h.id)).slice(0, 25);
  assert.deepEqual(index.search('alpha delta', 25, accept), expected);
  for (let i = 1; i < all.length; i++) assert.ok(all[i - 1].score >= all[i].score);
});

test('the posting pool keeps every term\'s postings in order through growth, moves, repacking and a reload', () => {
  const pool = new PostingPool();
  const expected: [number, number][][] = [];
  let x = 11;
  const next = () => ((x = (x * 1103515245 + 12345) >>> 0), x >>> 8);
  // Zipf-like: a few terms get most postings (they move and grow often), most get one or two.
  for (let doc = 0; doc < 20_000; doc++) {
    for (let k = 0; k < 6; k++) {
      const term = k < 2 ? next() % 8 : next() % (doc + 10);
      while (expected.length <= term) {
        assert.equal(pool.addTerm(), expected.length);
        expected.push([]);
      }
      const list = expected[term];
      if (list.length && list[list.length - 1][0] === doc) continue;
      const tf = 1 + (next() % 5);
      list.push([doc, tf]);
      pool.append(term, doc, tf);
    }
  }
  const check = (p: PostingPool) => {
    assert.equal(p.termCount, expected.length);
    expected.forEach((list, term) => {
      assert.deepEqual([...p.docsOf(term)], list.map(([doc]) => doc), `docs of term ${term}`);
      assert.deepEqual([...p.tfsOf(term)], list.map(([, tf]) => tf), `tfs of term ${term}`);
    });
  };
  check(pool);
  const flat = pool.flatten();
  assert.equal(flat.docs.length, pool.postingCount);
  const reloaded = PostingPool.fromFlat(flat.offsets, flat.docs, flat.tfs);
  check(reloaded);
  reloaded.append(0, 20_000, 9);
  expected[0].push([20_000, 9]);
  check(reloaded);
});
