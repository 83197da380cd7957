import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { chunkingFingerprint, chunkText, DEFAULT_CHUNKING, estimateTokens, splitLines } from '../sidecar/corpus/chunk';
import { DEFAULT_FILE_CHUNKING, FileChunker, fileChunkingFingerprint, strategyOfFingerprint, type FileChunkOptions } from '../sidecar/corpus/file-chunker';
import { Grammars } from '../sidecar/corpus/grammars';
import type { Passage } from '../sidecar/corpus/passage';
import { languageOf, SYNTAX_LANGUAGES } from '../sidecar/corpus/syntax-languages';

const ROOT = path.resolve(__dirname, '..');
const fixture = (rel: string) => path.join(ROOT, 'test', 'fixtures', 'workspace', rel);
const SYNTAX: FileChunkOptions = { ...DEFAULT_FILE_CHUNKING, strategy: 'syntax' };
/** Real code pinned by package-lock.json (cheerio comes with @vscode/vsce) and the system's Python, when there is one. */
const CHEERIO_UTILS = path.join(ROOT, 'node_modules', 'cheerio', 'src', 'utils.ts');
const MOCHA_RUNNER = path.join(ROOT, 'node_modules', 'mocha', 'lib', 'runner.js');
const PYTHON_TEXTWRAP = ['/usr/lib/python3.11/textwrap.py', '/usr/lib/python3/textwrap.py'].find(existsSync);

const ranges = (ps: Passage[]) => ps.map((p) => [p.startLine, p.endLine]);

async function chunkFile(file: string, opts: Partial<FileChunkOptions> = {}, grammars?: Grammars) {
  const text = readFileSync(file, 'utf8');
  const chunker = new FileChunker({ ...SYNTAX, ...opts }, grammars);
  return { text, chunker, ...(await chunker.chunk({ path: file, text }, estimateTokens)) };
}

/** Each passage is exactly its lines of the source (or a piece of one over-long line), within the token budget. */
function assertExactAndWithinBudget(ps: Passage[], text: string, maxTokens: number) {
  const lines = splitLines(text);
  for (const p of ps) {
    const exact = lines.slice(p.startLine - 1, p.endLine).join('\n');
    assert.ok(p.text === exact || (p.startLine === p.endLine && exact.includes(p.text)), `lines ${p.startLine}-${p.endLine} are the source's`);
    assert.ok(estimateTokens(p.text) <= maxTokens, `lines ${p.startLine}-${p.endLine}: ${estimateTokens(p.text)} tokens`);
  }
}

/** Every line with a letter or digit is in some passage. */
function assertCoversCode(ps: Passage[], text: string) {
  splitLines(text).forEach((line, i) => {
    if (!/[\p{L}\p{N}]/u.test(line)) return;
    assert.ok(ps.some((p) => p.startLine <= i + 1 && i + 1 <= p.endLine), `line ${i + 1} is in no passage: ${line}`);
  });
}

describe('syntax chunking of real files', () => {
  test('Python: a decorated class that fits is one passage with its decorator; functions are passages; imports a window', async () => {
    const { passages, text, fallback } = await chunkFile(fixture('src/geometry/shapes.py'));
    assert.equal(fallback, undefined);
    assert.deepEqual(ranges(passages), [
      [1, 3], // module docstring and imports
      [6, 14], // @dataclass class Circle, both methods
      [17, 26], // @dataclass class Rectangle
      [29, 31], // def total_area
      [34, 36], // def largest_shape
    ]);
    assertExactAndWithinBudget(passages, text, 128);
  });

  test('Python: a class over the budget is split into its methods; its header and fields are a window', async () => {
    const { passages, text } = await chunkFile(fixture('src/geometry/shapes.py'), { maxTokens: 40 });
    assert.deepEqual(ranges(passages).slice(1, 7), [
      [6, 8], // @dataclass class Circle: radius: float
      [10, 11], // def area
      [13, 14], // def perimeter
      [17, 20],
      [22, 23],
      [25, 26],
    ]);
    assertExactAndWithinBudget(passages, text, 40);
    assertCoversCode(passages, text);
  });

  test('TypeScript (cheerio): functions with their JSDoc; the JSDoc cut off when only the code fits; a long function windowed', async () => {
    const { passages, text, fallback } = await chunkFile(CHEERIO_UTILS);
    assert.equal(fallback, undefined);
    assert.deepEqual(ranges(passages), [
      [1, 2], // imports
      [4, 15], // JSDoc + isCheerio
      [17, 27], // JSDoc + camelCase
      [29, 40], // JSDoc + cssCase
      [42, 53], // domEach's JSDoc, which does not fit with it…
      [54, 61], // …so the function is a passage of its own
      [63, 69], // const enum CharacterCode
      [71, 86], // isHtml does not fit even alone: 20-line windows from its JSDoc, capped at 128 tokens
      [81, 94],
      [91, 99],
    ]);
    assertExactAndWithinBudget(passages, text, 128);
  });

  test('TypeScript: methods of a class over the budget; a closing brace alone is no passage', async () => {
    const { passages, text } = await chunkFile(fixture('src/text/lru-cache.ts'));
    assert.deepEqual(ranges(passages), [
      [1, 6], // class JSDoc, header and field
      [8, 10], // constructor
      [12, 19], // get
      [21, 28], // set
      [30, 32], // get size
    ]);
    assertExactAndWithinBudget(passages, text, 128);
  });

  test('JavaScript (mocha runner): every passage within budget, exact, and every line of code covered', async () => {
    for (const maxTokens of [128, 48]) {
      const { passages, text, fallback } = await chunkFile(MOCHA_RUNNER, { maxTokens });
      assert.equal(fallback, undefined);
      assertExactAndWithinBudget(passages, text, maxTokens);
      assertCoversCode(passages, text);
      // `Runner.prototype.grep = function …` fits without its JSDoc: it is one passage from its first to its last line.
      const lines = splitLines(text);
      const start = lines.findIndex((l) => l.startsWith('Runner.prototype.grep = function')) + 1;
      const end = lines.findIndex((l, i) => i >= start && l === '};') + 1;
      if (maxTokens === 128) assert.ok(passages.some((p) => p.startLine === start && p.endLine === end), `grep is lines ${start}-${end}`);
      // Windows of a long definition stay inside it: none straddles `Runner.prototype.runTests`'s first line.
      const runTests = lines.findIndex((l) => l.startsWith('Runner.prototype.runTests = function')) + 1;
      assert.ok(!passages.some((p) => p.startLine < runTests && runTests <= p.endLine && !/^\s*(\/\*\*|\*)/.test(lines[p.startLine - 1])));
    }
  });

  test('Python standard library textwrap.py: exact, within budget, covered; its classes split into methods', { skip: !PYTHON_TEXTWRAP && 'no system Python' }, async () => {
    const { passages, text, fallback } = await chunkFile(PYTHON_TEXTWRAP!);
    assert.equal(fallback, undefined);
    assertExactAndWithinBudget(passages, text, 128);
    assertCoversCode(passages, text);
    const lines = splitLines(text);
    const dedent = lines.findIndex((l) => l.startsWith('def dedent(')) + 1;
    assert.ok(passages.some((p) => p.startLine === dedent), 'def dedent starts a passage');
  });
});

describe('fallback to line windows', () => {
  test('files no grammar covers are cut exactly as by line windows', async () => {
    for (const file of [fixture('README.md'), path.join(ROOT, 'node_modules', 'uplot', 'dist', 'uPlot.min.css')]) {
      const text = readFileSync(file, 'utf8');
      const { passages, fallback } = await new FileChunker(SYNTAX).chunk({ path: file, text }, estimateTokens);
      assert.equal(fallback, undefined);
      assert.deepEqual(passages, chunkText({ path: file, text }, DEFAULT_CHUNKING, estimateTokens), file);
    }
    assert.equal(languageOf('a/b.CSS'), undefined);
    assert.equal(languageOf('a/b.PY')?.id, 'python');
  });

  test('a grammar that does not load: its files are windows, the reason is reported, other languages still parse', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'replug-grammars-'));
    try {
      const wasm = path.join(ROOT, 'node_modules', '@vscode', 'tree-sitter-wasm', 'wasm');
      writeFileSync(path.join(dir, 'tree-sitter-python.wasm'), readFileSync(path.join(wasm, 'tree-sitter-python.wasm')).subarray(0, 5000));
      copyFileSync(path.join(wasm, 'tree-sitter-typescript.wasm'), path.join(dir, 'tree-sitter-typescript.wasm'));
      const grammars = new Grammars({ dir });
      const python = await chunkFile(fixture('src/geometry/shapes.py'), {}, grammars);
      assert.equal(python.fallback, 'grammar-unavailable');
      assert.deepEqual(python.passages, chunkText({ path: fixture('src/geometry/shapes.py'), text: python.text }, DEFAULT_CHUNKING, estimateTokens));
      assert.match(python.chunker.unavailable.get('python') ?? '', /\S/);
      const ts = await chunkFile(fixture('src/text/lru-cache.ts'), {}, grammars);
      assert.equal(ts.fallback, undefined);
      assert.equal(ts.passages.length, 5);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('a parse that runs past its deadline gives line windows', async () => {
    const { passages, text, fallback } = await chunkFile(MOCHA_RUNNER, {}, new Grammars({ parseDeadlineMs: -1 }));
    assert.equal(fallback, 'parse-failed');
    assert.deepEqual(passages, chunkText({ path: MOCHA_RUNNER, text }, DEFAULT_CHUNKING, estimateTokens));
  });

  test('a definition with a syntax error is cut like code between definitions; the others are still passages', async () => {
    const text = readFileSync(fixture('src/text/tokenize.ts'), 'utf8').replace('return identifier', 'return identifier )(');
    // Short windows, so that windows over the broken function (lines 10-16) differ from a passage of all of it.
    const opts = { ...SYNTAX, windowLines: 4, strideLines: 2, maxTokens: 160 };
    const { passages, fallback } = await new FileChunker(opts).chunk({ path: '/r/tokenize.ts', text }, estimateTokens);
    assert.equal(fallback, undefined);
    assert.deepEqual(ranges(passages), [
      [1, 8], // tokenize with its JSDoc
      [10, 13], // splitIdentifier, which does not parse: windows
      [12, 15],
      [14, 16],
      [18, 25], // termFrequencies with its JSDoc
    ]);
    assertExactAndWithinBudget(passages, text, 160);
  });

  test('hostile nesting (20,000 nested functions) is chunked without overflowing the stack', async () => {
    const n = 20_000;
    const text = 'function f() {\n'.repeat(n) + '  return 1;\n' + '}\n'.repeat(n);
    const { passages, fallback } = await new FileChunker(SYNTAX).chunk({ path: '/r/deep.js', text }, estimateTokens);
    assert.equal(fallback, undefined);
    assertExactAndWithinBudget(passages, text, 128);
    assertCoversCode(passages, text);
  });
});

describe('grammars', () => {
  // One small definition per grammar: guards the node types against renames in a new grammar release.
  const SAMPLES: Record<string, [string, string, number[]]> = {
    typescript: ['a.ts', 'import x from "x";\n\nexport function f(a: number): number {\n  return a;\n}\n', [3, 5]],
    tsx: ['a.tsx', 'export const App = () => (\n  <div>hi</div>\n);\n', [1, 3]],
    javascript: ['a.js', 'const x = 1;\n\nexports.add = function (a, b) {\n  return a + b;\n};\n', [3, 5]],
    python: ['a.py', 'import os\n\n@cache\ndef f():\n    return 1\n', [3, 5]],
    go: ['a.go', 'package main\n\n// Add adds.\nfunc Add(a, b int) int {\n\treturn a + b\n}\n', [3, 6]],
    java: ['A.java', 'package x;\n\n/** A. */\nclass A {\n  int m() { return 1; }\n}\n', [3, 6]],
    rust: ['a.rs', 'use std::io;\n\n/// Doc.\n#[inline]\nfn f() -> i32 {\n    1\n}\n', [3, 7]],
    'c-sharp': ['A.cs', 'using System;\n\n/// <summary>C.</summary>\nclass C {\n  int M() { return 1; }\n}\n', [3, 6]],
    cpp: ['a.cpp', '#include <x>\n\n// Twice.\ntemplate <typename T>\nT twice(T a) {\n  return a + a;\n}\n', [3, 7]],
    ruby: ['a.rb', 'require "x"\n\n# Greets.\ndef greet\n  puts "hi"\nend\n', [3, 6]],
    php: ['a.php', '<?php\nuse X;\n\n/** F. */\nfunction f() {\n  return 1;\n}\n', [4, 7]],
    bash: ['a.sh', 'set -e\n\n# Greets.\ngreet() {\n  echo hi\n}\n', [3, 6]],
  };

  test('every grammar loads and finds a definition, with its comment, decorator or attribute', async () => {
    assert.deepEqual(Object.keys(SAMPLES).sort(), SYNTAX_LANGUAGES.map((l) => l.id).sort());
    // A budget below each whole sample, so the definition is split off from what surrounds it.
    const chunker = new FileChunker({ ...SYNTAX, maxTokens: 48 });
    for (const [id, [file, text, range]] of Object.entries(SAMPLES)) {
      assert.equal(languageOf(file)?.id, id);
      const { passages, fallback } = await chunker.chunk({ path: `/r/${file}`, text: text + '\n'.repeat(3) + '// ' + 'pad '.repeat(60) + '\n' }, estimateTokens);
      assert.equal(fallback, undefined, id);
      assert.ok(passages.some((p) => p.startLine === range[0] && p.endLine === range[1]), `${id}: ${JSON.stringify(ranges(passages))}`);
    }
    assert.equal(chunker.unavailable.size, 0);
  });
});

describe('chunking fingerprint', () => {
  test('changes with the strategy; line windows keep the fingerprint indexes were built with', () => {
    assert.equal(fileChunkingFingerprint(DEFAULT_FILE_CHUNKING), chunkingFingerprint(DEFAULT_CHUNKING));
    const syntax = fileChunkingFingerprint(SYNTAX);
    assert.notEqual(syntax, fileChunkingFingerprint(DEFAULT_FILE_CHUNKING));
    assert.notEqual(syntax, fileChunkingFingerprint({ ...SYNTAX, maxTokens: 64 }));
    assert.equal(strategyOfFingerprint(`${syntax}|estimate-v1`), 'syntax');
    assert.equal(strategyOfFingerprint(`${fileChunkingFingerprint(DEFAULT_FILE_CHUNKING)}|estimate-v1`), 'lines');
  });

  test('an unknown strategy is an error that names the choices', () => {
    assert.throws(() => new FileChunker({ ...DEFAULT_FILE_CHUNKING, strategy: 'ast' as never }), /chunking strategy must be lines or syntax, got "ast"/);
  });
});
