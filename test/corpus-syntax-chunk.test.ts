import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { chunkingFingerprint, chunkText, DEFAULT_CHUNKING, estimateTokens, splitLines } from '../sidecar/corpus/chunk';
import {
  DEFAULT_FILE_CHUNKING,
  FileChunker,
  fileChunkingFingerprint,
  strategyOfFingerprint,
  SYNTAX_BY_DEFAULT,
  type FileChunkOptions,
} from '../sidecar/corpus/file-chunker';
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
  test('Python: whole definitions, with their decorators, share passages while together they fit', async () => {
    const { passages, text, fallback } = await chunkFile(fixture('src/geometry/shapes.py'));
    assert.equal(fallback, undefined);
    assert.deepEqual(ranges(passages), [
      [1, 14], // module docstring and imports, then @dataclass class Circle with both methods (83 tokens)
      [17, 31], // @dataclass class Rectangle, then def total_area (99 tokens)
      [34, 36], // def largest_shape (55 tokens: with the two above it would not fit)
    ]);
    assertExactAndWithinBudget(passages, text, 128);
  });

  test('Python: a class over the budget is split into its methods; a function over it is windowed', async () => {
    const { passages, text } = await chunkFile(fixture('src/geometry/shapes.py'), { maxTokens: 40 });
    assert.deepEqual(ranges(passages), [
      [1, 8], // docstring and imports, then Circle's decorator, header and field
      [10, 11], // def area
      [13, 20], // def perimeter, then Rectangle's decorator, header and fields
      [22, 23], // def area
      [25, 26], // def perimeter
      [29, 30], // def total_area is 42 tokens: windows
      [31, 31],
      [34, 35], // def largest_shape is 55 tokens: windows
      [36, 36],
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
      [54, 69], // …so the function is whole without it, and shares a passage with const enum CharacterCode
      [71, 86], // isHtml does not fit even alone: 20-line windows from its JSDoc, capped at 128 tokens
      [81, 94],
      [91, 99],
    ]);
    assertExactAndWithinBudget(passages, text, 128);
  });

  test('TypeScript: methods of a class over the budget; a closing brace alone is no passage', async () => {
    const { passages, text } = await chunkFile(fixture('src/text/lru-cache.ts'));
    assert.deepEqual(ranges(passages), [
      [1, 10], // class JSDoc, header and field, then the constructor
      [12, 19], // get
      [21, 32], // set, then get size; the class's closing brace (line 33) is no passage
    ]);
    assertExactAndWithinBudget(passages, text, 128);
  });

  test('JavaScript (mocha runner): every passage within budget, exact, and every line of code covered', async () => {
    for (const maxTokens of [128, 48]) {
      const { passages, text, fallback } = await chunkFile(MOCHA_RUNNER, { maxTokens });
      assert.equal(fallback, undefined);
      assertExactAndWithinBudget(passages, text, maxTokens);
      assertCoversCode(passages, text);
      // `Runner.prototype.grep = function …` fits without its JSDoc: a passage starts with it and holds all of it.
      const lines = splitLines(text);
      const start = lines.findIndex((l) => l.startsWith('Runner.prototype.grep = function')) + 1;
      const end = lines.findIndex((l, i) => i >= start && l === '};') + 1;
      if (maxTokens === 128) assert.ok(passages.some((p) => p.startLine === start && p.endLine >= end), `grep is lines ${start}-${end}`);
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
      assert.deepEqual(ranges(ts.passages), [[1, 10], [12, 19], [21, 32]]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('a parse that runs past its deadline gives line windows', async () => {
    const { passages, text, fallback } = await chunkFile(MOCHA_RUNNER, {}, new Grammars({ parseDeadlineMs: -1 }));
    assert.equal(fallback, 'parse-failed');
    assert.deepEqual(passages, chunkText({ path: MOCHA_RUNNER, text }, DEFAULT_CHUNKING, estimateTokens));
  });

  test('a syntax error: the definitions around it are still passages, the broken one is cut into windows', async () => {
    const text = readFileSync(fixture('src/text/tokenize.ts'), 'utf8').replace('return identifier', 'return identifier )(');
    // Short windows, so that windows over the broken function (lines 10-16, 150 tokens) show; the others fit 131.
    const opts = { ...SYNTAX, windowLines: 4, strideLines: 2, maxTokens: 131 };
    const { passages, fallback } = await new FileChunker(opts).chunk({ path: '/r/tokenize.ts', text }, estimateTokens);
    assert.equal(fallback, undefined);
    assert.deepEqual(ranges(passages), [
      [1, 8], // tokenize with its JSDoc
      [10, 13], // splitIdentifier, which does not parse: windows
      [12, 15],
      [14, 16],
      [18, 25], // termFrequencies with its JSDoc
    ]);
    assertExactAndWithinBudget(passages, text, 131);
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
    for (const [id, [file, text, range]] of Object.entries(SAMPLES)) {
      assert.equal(languageOf(file)?.id, id);
      // The definition's own size as the budget: it fits, but not with the line before it or the long one after it.
      const maxTokens = estimateTokens(splitLines(text).slice(range[0] - 1, range[1]).join('\n'));
      const chunker = new FileChunker({ ...SYNTAX, maxTokens });
      const padded = `${text}\n\n${'pad '.repeat(maxTokens + 1)}\n`;
      const { passages, fallback } = await chunker.chunk({ path: `/r/${file}`, text: padded }, estimateTokens);
      assert.equal(fallback, undefined, id);
      assert.equal(chunker.unavailable.size, 0, id);
      assert.ok(passages.some((p) => p.startLine === range[0] && p.endLine === range[1]), `${id}: ${JSON.stringify(ranges(passages))}`);
    }
  });
});

describe('auto strategy', () => {
  test('cuts Python by syntax and every other language into line windows', async () => {
    const chunker = new FileChunker(DEFAULT_FILE_CHUNKING);
    assert.equal(DEFAULT_FILE_CHUNKING.strategy, 'auto');
    assert.deepEqual([...SYNTAX_BY_DEFAULT], ['python']);
    const python = fixture('src/geometry/shapes.py');
    const pythonText = readFileSync(python, 'utf8');
    assert.deepEqual(
      (await chunker.chunk({ path: python, text: pythonText }, estimateTokens)).passages,
      (await new FileChunker(SYNTAX).chunk({ path: python, text: pythonText }, estimateTokens)).passages,
    );
    for (const file of [CHEERIO_UTILS, MOCHA_RUNNER, fixture('scripts/retry.go')]) {
      const text = readFileSync(file, 'utf8');
      assert.deepEqual((await chunker.chunk({ path: file, text }, estimateTokens)).passages, chunkText({ path: file, text }, DEFAULT_CHUNKING, estimateTokens), file);
    }
  });
});

describe('chunking fingerprint', () => {
  test('changes with the strategy; line windows keep the fingerprint indexes were built with', () => {
    const lines = { ...DEFAULT_FILE_CHUNKING, strategy: 'lines' } as const;
    assert.equal(fileChunkingFingerprint(lines), chunkingFingerprint(DEFAULT_CHUNKING));
    const prints = (['auto', 'lines', 'syntax'] as const).map((strategy) => fileChunkingFingerprint({ ...DEFAULT_FILE_CHUNKING, strategy }));
    assert.equal(new Set(prints).size, 3);
    assert.notEqual(fileChunkingFingerprint(SYNTAX), fileChunkingFingerprint({ ...SYNTAX, maxTokens: 64 }));
    assert.match(prints[0], /^auto\(python\)-/);
    assert.deepEqual(prints.map((p) => strategyOfFingerprint(`${p}|estimate-v1`)), ['auto', 'lines', 'syntax']);
  });

  test('an unknown strategy is an error that names the choices', () => {
    assert.throws(() => new FileChunker({ ...DEFAULT_FILE_CHUNKING, strategy: 'ast' as never }), /chunking strategy must be auto, lines, syntax, got "ast"/);
  });
});
