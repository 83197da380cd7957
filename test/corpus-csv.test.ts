import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DEFAULT_CHUNKING, estimateTokens, type ChunkOptions } from '../sidecar/corpus/chunk';
import { corpusPassages } from '../sidecar/corpus/corpus-file';
import { readCsvQueries } from '../sidecar/corpus/csv';
import type { Passage, TokenCounter } from '../sidecar/corpus/passage';
import { inputError } from './helpers/input-error';

const words = (text: string) => text.split(/\s+/).filter(Boolean).length;

/** All passages of a CSV corpus, as the index streams them. */
async function readCsvPassages(file: string, countTokens: TokenCounter, opts: ChunkOptions): Promise<Passage[]> {
  const passages: Passage[] = [];
  for await (const row of corpusPassages(file, countTokens, opts)) passages.push(...row);
  return passages;
}

let dir: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'corpus-csv-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

let n = 0;
async function csvFile(content: string | Buffer): Promise<string> {
  const file = join(dir, `c${n++}.csv`);
  await writeFile(file, content);
  return file;
}

describe('readCsvPassages', () => {
  test('quoted fields with commas, doubled quotes and embedded newlines; line ranges are physical lines', async () => {
    const file = await csvFile(
      [
        'id,text,lang',
        'a,"const x = f(1, 2);",ts',
        '',
        'b,"function g() {',
        '  return ""hi"";',
        '}",js',
        'c,plain text,md',
      ].join('\n') + '\n',
    );
    const ps = await readCsvPassages(file, words, DEFAULT_CHUNKING);
    assert.deepEqual(
      ps.map((p) => [p.docId, p.startLine, p.endLine, p.text]),
      [
        ['a', 2, 2, 'const x = f(1, 2);'],
        ['b', 4, 6, 'function g() {\n  return "hi";\n}'],
        ['c', 7, 7, 'plain text'],
      ],
    );
    for (const p of ps) {
      assert.equal(p.path, file);
      assert.match(p.id, /^[0-9a-f]{32}$/);
    }
  });

  test('CRLF files, mixed line ends and a byte-order mark give the same rows and lines', async () => {
    const lf = 'id,text\n1,"one\ntwo"\n2,three\n';
    const a = await readCsvPassages(await csvFile(lf), words, DEFAULT_CHUNKING);
    const b = await readCsvPassages(await csvFile('\ufeff' + lf.replace(/\n/g, '\r\n')), words, DEFAULT_CHUNKING);
    const c = await readCsvPassages(await csvFile('id,text\r\n1,"one\ntwo"\n2,three\r\n'), words, DEFAULT_CHUNKING);
    const view = (ps: typeof a) => ps.map((p) => [p.docId, p.startLine, p.endLine, p.text.replace(/\r/g, '')]);
    assert.deepEqual(view(a), [
      ['1', 2, 3, 'one\ntwo'],
      ['2', 4, 4, 'three'],
    ]);
    assert.deepEqual(view(b), view(a));
    assert.deepEqual(view(c), view(a));
  });

  test('a title column becomes the first line of the passage', async () => {
    const file = await csvFile('title,id,text\nParser,p1,parses CSV files\n,p2,no title here\n');
    const ps = await readCsvPassages(file, words, DEFAULT_CHUNKING);
    assert.deepEqual(
      ps.map((p) => p.text),
      ['Parser\nparses CSV files', 'no title here'],
    );
  });

  test('a row over the token budget is split into pieces that keep its lines and docId', async () => {
    const body = Array.from({ length: 30 }, (_, i) => `line ${i} of a long document`).join('\n');
    const file = await csvFile(`id,text\nshort,tiny\nlong,"${body}"\n`);
    const opts = { ...DEFAULT_CHUNKING, maxTokens: 40 };
    const ps = await readCsvPassages(file, words, opts);
    const pieces = ps.filter((p) => p.docId === 'long');
    assert.ok(pieces.length > 1);
    for (const p of pieces) {
      assert.ok(words(p.text) <= 40);
      assert.deepEqual([p.startLine, p.endLine], [3, 32]);
    }
    assert.equal(pieces.map((p) => p.text).join('\n'), body, 'pieces cover the row once, in order');
    assert.equal(new Set(ps.map((p) => p.id)).size, ps.length);
    // Under the budget a row stays whole, however many lines it has.
    const whole = await readCsvPassages(file, words, { ...opts, maxTokens: 1000 });
    assert.equal(whole.filter((p) => p.docId === 'long').length, 1);
  });

  test('a real-looking corpus with the estimated counter: one passage per row', async () => {
    const rows = Array.from({ length: 200 }, (_, i) => `doc${i},"def f${i}(x, y):\n    return x * ${i} + y"`);
    const ps = await readCsvPassages(await csvFile(`id,text\n${rows.join('\n')}\n`), estimateTokens, DEFAULT_CHUNKING);
    assert.equal(ps.length, 200);
    assert.deepEqual([ps[199].docId, ps[199].startLine, ps[199].endLine], ['doc199', 400, 401]);
  });
});

describe('CSV validation', () => {
  test('a header without id or text names the file and the columns found', async () => {
    const file = await csvFile('name,body\nx,y\n');
    const err = await inputError(() => readCsvPassages(file, words, DEFAULT_CHUNKING));
    assert.equal(err.file, file);
    assert.equal(err.line, 1);
    assert.match(err.message, /id, text/);
    assert.match(err.message, /found: name, body/);
    assert.ok(err.message.startsWith(`${file}:1:`));
  });

  test('an empty text names the line of the row and the column', async () => {
    const file = await csvFile('id,text\n1,ok\n2,"  "\n3,fine\n');
    const err = await inputError(() => readCsvPassages(file, words, DEFAULT_CHUNKING));
    assert.deepEqual([err.file, err.line, err.column], [file, 3, 'text']);
  });

  test('an empty id after a multi-line record is reported at its own first line', async () => {
    const file = await csvFile('id,text\n1,"a\nb\nc"\n,orphan\n');
    const err = await inputError(() => readCsvQueries(file));
    assert.deepEqual([err.line, err.column], [5, 'id']);
  });

  test('a duplicate id reports both lines', async () => {
    const file = await csvFile('id,text\nq1,first\nq2,second\nq1,again\n');
    const err = await inputError(() => readCsvPassages(file, words, DEFAULT_CHUNKING));
    assert.deepEqual([err.line, err.column], [4, 'id']);
    assert.match(err.message, /first used on line 2/);
  });

  test('an unclosed quote is reported at the record that opened it', async () => {
    const file = await csvFile('id,text\n1,fine\n2,"never closed\nmore\nand more\n');
    const err = await inputError(() => readCsvPassages(file, words, DEFAULT_CHUNKING));
    assert.equal(err.line, 3);
    assert.match(err.message, /Quote Not Closed/);
    assert.match(err.message, /close the quoted field/);
  });

  test('a row with too many fields passes csv-parse\'s line through', async () => {
    const file = await csvFile('id,text\n1,ok\n2,a, b\n');
    const err = await inputError(() => readCsvPassages(file, words, DEFAULT_CHUNKING));
    assert.equal(err.line, 3);
    assert.match(err.message, /quote fields that contain commas/);
  });

  test('empty files, header-only files and non-UTF-8 files are rejected', async () => {
    const empty = await csvFile('');
    assert.match((await inputError(() => readCsvQueries(empty))).message, /empty.*header row/);
    const headerOnly = await csvFile('id,text\n');
    assert.match((await inputError(() => readCsvQueries(headerOnly))).message, /no rows/);
    const latin1 = await csvFile(Buffer.from('id,text\n1,ok\n2,caf\xe9\n', 'latin1'));
    const err = await inputError(() => readCsvQueries(latin1));
    assert.equal(err.line, 3);
    assert.match(err.message, /UTF-8/);
  });
});

describe('readCsvQueries', () => {
  test('returns id, text and first line of each row, with the same parsing as corpora', async () => {
    const file = await csvFile('id,text,answer\nq1,"where is, the parser?",x\n\nq2,"two\nlines",y\n');
    assert.deepEqual(await readCsvQueries(file), [
      { id: 'q1', text: 'where is, the parser?', line: 2 },
      { id: 'q2', text: 'two\nlines', line: 4 },
    ]);
  });
});
