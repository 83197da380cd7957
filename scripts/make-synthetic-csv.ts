/**
 * Writes a synthetic CSV corpus (`id,title,text`) of any size, for the scaling benchmark of sharded indexing
 * (scripts/bench-shards.ts). Never committed: generate it where it is needed.
 *
 *   node --import tsx scripts/make-synthetic-csv.ts OUT.csv [--rows 1000000] [--words 40] [--seed 1]
 *
 * Rows look like short code-documentation passages: Zipf-distributed words and camelCase/snake_case identifiers
 * (so BM25 postings have a realistic long tail while the vocabulary stays bounded, as Heaps' law has it for real
 * corpora: about 50,000 words and 200,000 identifiers), about `--words` words each, with commas and quotes that the
 * CSV writer must quote. Deterministic for a given seed.
 */
import { createWriteStream } from 'node:fs';
import { once } from 'node:events';
import { parseArgs } from 'node:util';

const VOCABULARY = 50_000;
const IDENTIFIERS = 200_000;
const SYLLABLES = ['ka', 'lo', 'mi', 'ne', 'ru', 'ta', 'si', 'po', 'de', 'va', 'in', 'or', 'el', 'un', 'ar', 'ex', 'qu', 'zo'];

/** mulberry32: a small, fast, seedable PRNG; Math.random cannot be seeded. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function makeVocabulary(random: () => number): string[] {
  const words = new Set<string>();
  while (words.size < VOCABULARY) {
    const n = 1 + Math.floor(random() * 4);
    let w = '';
    for (let i = 0; i < n; i++) w += SYLLABLES[Math.floor(random() * SYLLABLES.length)];
    words.add(w);
  }
  // Frequent words are short, as in natural language and code (Zipf's law of abbreviation).
  return [...words].sort((a, b) => a.length - b.length);
}

/** Inverse-CDF sampler of a Zipf(1) distribution over ranks 0..n-1. */
function zipfSampler(n: number, random: () => number): () => number {
  const cdf = new Float64Array(n);
  let sum = 0;
  for (let r = 0; r < n; r++) cdf[r] = sum += 1 / (r + 1);
  return () => {
    const x = random() * sum;
    let lo = 0;
    let hi = n - 1;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (cdf[mid] < x) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  };
}

function csvField(text: string): string {
  return /[",\n\r]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}

async function main(): Promise<void> {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: { rows: { type: 'string', default: '1000000' }, words: { type: 'string', default: '40' }, seed: { type: 'string', default: '1' } },
  });
  const rows = Number(values.rows);
  const words = Number(values.words);
  const seed = Number(values.seed);
  if (positionals.length !== 1 || ![rows, words, seed].every((n) => Number.isInteger(n) && n >= 0)) {
    throw new Error('usage: make-synthetic-csv.ts OUT.csv [--rows N] [--words N] [--seed N]');
  }
  const random = prng(seed);
  const vocabulary = makeVocabulary(random);
  const pick = zipfSampler(VOCABULARY, random);
  const word = () => vocabulary[pick()];
  const identifiers = Array.from({ length: IDENTIFIERS }, (_, i) => {
    const [a, b] = [word(), word()];
    return i % 3 === 0 ? `${a}_${b}` : a + b[0].toUpperCase() + b.slice(1);
  });
  const pickIdentifier = zipfSampler(IDENTIFIERS, random);
  const identifier = () => identifiers[pickIdentifier()];
  const token = () => {
    const r = random();
    if (r < 0.15) return identifier();
    if (r < 0.18) return `${identifier()}(${word()}, ${word()})`;
    if (r < 0.2) return `"${word()}"`;
    return word();
  };

  const out = createWriteStream(positionals[0]);
  const write = async (s: string) => {
    if (!out.write(s)) await once(out, 'drain');
  };
  await write('id,title,text\n');
  for (let i = 0; i < rows; i++) {
    const n = Math.max(5, Math.round(words * (0.5 + random())));
    const text = Array.from({ length: n }, token).join(' ') + '.';
    await write(`row${i},${csvField(`${word()} ${word()}`)},${csvField(text)}\n`);
  }
  out.end();
  await once(out, 'finish');
}

main().catch((err) => {
  console.error(err instanceof Error ? err.message : err);
  process.exitCode = 1;
});
