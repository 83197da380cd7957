import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import {
  chunkingFingerprint,
  chunkText,
  DEFAULT_CHUNKING,
  estimateTokens,
  splitLongLine,
  type ChunkOptions,
} from '../sidecar/corpus/chunk';
import type { Passage } from '../sidecar/corpus/passage';

/** One token per whitespace-separated word: makes budgets easy to reason about. */
const words = (text: string) => text.split(/\s+/).filter(Boolean).length;

const numbered = (n: number, make = (i: number) => `const v${i} = ${i};`) =>
  Array.from({ length: n }, (_, i) => make(i + 1)).join('\n') + '\n';

const ranges = (ps: Passage[]) => ps.map((p) => [p.startLine, p.endLine]);

/** Every passage's text must be exactly its line range of the source. */
function assertTextMatchesLines(ps: Passage[], text: string) {
  const lines = text.split(/\r?\n/);
  for (const p of ps) {
    assert.equal(p.text, lines.slice(p.startLine - 1, p.endLine).join('\n'), `lines ${p.startLine}-${p.endLine}`);
  }
}

/** Every line with content must appear in some passage. */
function assertCovers(ps: Passage[], text: string) {
  const lines = text.split('\n');
  lines.forEach((line, i) => {
    if (line.trim() === '') return;
    assert.ok(ps.some((p) => p.startLine <= i + 1 && i + 1 <= p.endLine), `line ${i + 1} is in no passage`);
  });
}

describe('chunkText windows', () => {
  test('20-line windows every 10 lines; the last window reaches the end of the file', () => {
    const text = numbered(35);
    const ps = chunkText({ path: '/r/a.ts', text }, DEFAULT_CHUNKING, words);
    assert.deepEqual(ranges(ps), [
      [1, 20],
      [11, 30],
      [21, 35],
    ]);
    assertTextMatchesLines(ps, text);
  });

  test('a file of exactly one window gives one passage; one more line adds an overlapping tail window', () => {
    assert.deepEqual(ranges(chunkText({ path: '/r/a.ts', text: numbered(20) }, DEFAULT_CHUNKING, words)), [[1, 20]]);
    assert.deepEqual(ranges(chunkText({ path: '/r/a.ts', text: numbered(21) }, DEFAULT_CHUNKING, words)), [
      [1, 20],
      [11, 21],
    ]);
    assert.deepEqual(ranges(chunkText({ path: '/r/a.ts', text: 'x = 1' }, DEFAULT_CHUNKING, words)), [[1, 1]]);
  });

  test('the token cap shortens windows and the next window starts right after, so no line is lost', () => {
    const text = numbered(30); // 4 words per line
    const opts: ChunkOptions = { windowLines: 20, strideLines: 10, maxTokens: 14 };
    const ps = chunkText({ path: '/r/a.ts', text }, opts, words);
    for (const p of ps) {
      assert.ok(words(p.text) <= 14, `${p.startLine}-${p.endLine} has ${words(p.text)} tokens`);
      assert.equal(p.endLine - p.startLine + 1, 3, 'three 4-word lines fit 14 tokens, four do not');
    }
    for (let i = 1; i < ps.length; i++) assert.equal(ps[i].startLine, ps[i - 1].endLine + 1);
    assert.equal(ps.at(-1)!.endLine, 30);
    assertTextMatchesLines(ps, text);
  });

  test('a line over the budget is split into pieces that keep its line number', () => {
    const long = Array.from({ length: 300 }, (_, i) => `word${i}`).join(' ');
    const text = `${numbered(5)}${long}\n${numbered(5)}`;
    const ps = chunkText({ path: '/r/a.ts', text }, DEFAULT_CHUNKING, words);
    const pieces = ps.filter((p) => p.startLine === 6 && p.endLine === 6);
    assert.ok(pieces.length >= 3, `expected the 300-word line in >=3 pieces, got ${pieces.length}`);
    for (const p of pieces) assert.ok(words(p.text) <= DEFAULT_CHUNKING.maxTokens);
    assert.equal(pieces.map((p) => p.text).join(''), long);
    assert.ok(!ps.some((p) => p.startLine < 6 && p.endLine >= 6), 'no window may swallow the long line');
    assert.deepEqual(
      ranges(ps.filter((p) => p.startLine !== 6)),
      [
        [1, 5],
        [7, 11],
      ],
    );
  });

  test('pieces of a long line cut at whitespace and never inside a surrogate pair', () => {
    const line = Array.from({ length: 200 }, () => 'ab😀cd').join(' ');
    const pieces = splitLongLine(line, 50, estimateTokens);
    assert.equal(pieces.join(''), line);
    for (const piece of pieces) {
      assert.ok(estimateTokens(piece) <= 50);
      assert.ok(!/^[\udc00-\udfff]|[\ud800-\udbff]$/.test(piece), 'a piece starts or ends inside a surrogate pair');
    }
    for (const piece of pieces.slice(0, -1)) assert.match(piece, /\s$/);
  });

  test('blank files and blank-only windows give no passages', () => {
    assert.deepEqual(chunkText({ path: '/r/a.ts', text: '' }, DEFAULT_CHUNKING, words), []);
    assert.deepEqual(chunkText({ path: '/r/a.ts', text: '\n \n\t\n\n' }, DEFAULT_CHUNKING, words), []);
    const text = `${numbered(3)}${'\n'.repeat(60)}${numbered(3)}`;
    const ps = chunkText({ path: '/r/a.ts', text }, DEFAULT_CHUNKING, words);
    for (const p of ps) assert.notEqual(p.text.trim(), '');
    assertCovers(ps, text);
    assertTextMatchesLines(ps, text);
  });

  test('CRLF input gives the same passages as LF input', () => {
    const lf = numbered(25);
    const crlf = lf.replace(/\n/g, '\r\n');
    const a = chunkText({ path: '/r/a.ts', text: lf }, DEFAULT_CHUNKING, words);
    const b = chunkText({ path: '/r/a.ts', text: crlf }, DEFAULT_CHUNKING, words);
    assert.deepEqual(b, a);
  });

  test('on a real source file every line is covered and every window fits the budget', () => {
    const text = readFileSync(new URL('../sidecar/corpus/chunk.ts', import.meta.url), 'utf8');
    const opts = { ...DEFAULT_CHUNKING, maxTokens: 64 };
    const ps = chunkText({ path: '/r/chunk.ts', text }, opts, estimateTokens);
    assertCovers(ps, text);
    for (const p of ps) assert.ok(estimateTokens(p.text) <= 64, `${p.startLine}-${p.endLine}`);
    for (const p of ps.filter((q) => q.startLine !== q.endLine)) assertTextMatchesLines([p], text);
  });

  test('countTokens is called once per line when no line is over the budget', () => {
    let calls = 0;
    const counting = (t: string) => (calls++, words(t));
    chunkText({ path: '/r/a.ts', text: numbered(95) }, DEFAULT_CHUNKING, counting);
    assert.equal(calls, 95);
  });
});

describe('passage ids', () => {
  test('ids and hashes are 16-byte hex, unique, and stable across runs', () => {
    const text = numbered(50);
    const a = chunkText({ path: '/r/a.ts', text }, DEFAULT_CHUNKING, words);
    const b = chunkText({ path: '/r/a.ts', text }, DEFAULT_CHUNKING, words);
    assert.deepEqual(b, a);
    for (const p of a) {
      assert.match(p.id, /^[0-9a-f]{32}$/);
      assert.match(p.hash, /^[0-9a-f]{32}$/);
    }
    assert.equal(new Set(a.map((p) => p.id)).size, a.length);
  });

  test('an edit changes only the ids of windows that contain it; another path changes all ids', () => {
    const text = numbered(50);
    const edited = text.replace('const v45 = 45;', 'const v45 = 4500;');
    const before = chunkText({ path: '/r/a.ts', text }, DEFAULT_CHUNKING, words);
    const after = chunkText({ path: '/r/a.ts', text: edited }, DEFAULT_CHUNKING, words);
    assert.deepEqual(ranges(after), ranges(before));
    before.forEach((p, i) => {
      const touched = p.startLine <= 45 && 45 <= p.endLine;
      assert.equal(after[i].id !== p.id, touched, `window ${p.startLine}-${p.endLine}`);
      assert.equal(after[i].hash !== p.hash, touched);
    });
    const moved = chunkText({ path: '/r/b.ts', text }, DEFAULT_CHUNKING, words);
    moved.forEach((p, i) => {
      assert.notEqual(p.id, before[i].id);
      assert.equal(p.hash, before[i].hash);
    });
  });

  test('a long line of repeated text does not produce duplicate ids', () => {
    const text = Array.from({ length: 400 }, () => 'aaaa').join(' ');
    const ps = chunkText({ path: '/r/a.txt', text }, DEFAULT_CHUNKING, words);
    assert.equal(new Set(ps.map((p) => p.id)).size, ps.length);
  });
});

describe('options', () => {
  test('bad options are rejected with a message naming the option', () => {
    const run = (opts: ChunkOptions) => chunkText({ path: '/r/a.ts', text: 'x' }, opts, words);
    assert.throws(() => run({ windowLines: 10, strideLines: 20, maxTokens: 128 }), /strideLines/);
    assert.throws(() => run({ windowLines: 10, strideLines: 5, maxTokens: 0 }), /maxTokens/);
    assert.throws(() => run({ windowLines: 2.5, strideLines: 1, maxTokens: 10 }), /windowLines/);
  });

  test('the fingerprint changes with every option', () => {
    const base = chunkingFingerprint(DEFAULT_CHUNKING);
    assert.equal(chunkingFingerprint({ ...DEFAULT_CHUNKING }), base);
    for (const key of ['windowLines', 'strideLines', 'maxTokens'] as const) {
      assert.notEqual(chunkingFingerprint({ ...DEFAULT_CHUNKING, [key]: DEFAULT_CHUNKING[key] + 1 }), base, key);
    }
  });
});

describe('estimateTokens', () => {
  test('splits identifiers at camelCase, snake_case and digits, and counts each symbol', () => {
    assert.equal(estimateTokens('readCsvPassages'), estimateTokens('read csv passages'));
    assert.equal(estimateTokens('HTMLParser'), estimateTokens('HTML Parser'));
    assert.equal(estimateTokens('max_tokens'), estimateTokens('max _ tokens'));
    assert.equal(estimateTokens('v2'), estimateTokens('v 2'));
    assert.equal(estimateTokens('a.b(c);'), 7);
    assert.equal(estimateTokens('   \n\t'), 0);
  });

  test('long words count as several pieces, and counts add up over lines', () => {
    assert.ok(estimateTokens('internationalization') > estimateTokens('intern'));
    const text = readFileSync(new URL('../sidecar/corpus/walk.ts', import.meta.url), 'utf8');
    const perLine = text.split('\n').reduce((sum, line) => sum + estimateTokens(line), 0);
    assert.equal(perLine, estimateTokens(text));
  });
});
