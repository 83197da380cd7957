import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { corpusRows } from '../sidecar/corpus/corpus-file';
import type { CorpusRow } from '../sidecar/corpus/corpus-row';
import { checkShard, shardOf, type ShardSpec } from '../sidecar/corpus/shard';
import { inputError } from './helpers/input-error';
import { makeTree, writeFiles } from './helpers/temp-tree';

const tree = makeTree({}, 'corpus-stream-');
after(tree.cleanup);

let n = 0;
/** A new corpus file with this content; its path. */
function file(ext: string, content: string | Buffer): string {
  const name = `f${n++}.${ext}`;
  writeFiles(tree.root, { [name]: content });
  return join(tree.root, name);
}

async function rows(f: string, shard?: ShardSpec): Promise<CorpusRow[]> {
  const out: CorpusRow[] = [];
  for await (const row of corpusRows(f, shard)) out.push(row);
  return out;
}

describe('streamed CSV', () => {
  test('line numbers stay exact across read chunks: multi-line quoted fields, CRLF, blank lines, multi-byte text', async () => {
    // About 1.5 MB, so records, CRLF pairs and 3-byte characters straddle the 64 KB read chunks many times.
    const expected: { id: string; startLine: number; endLine: number }[] = [];
    const parts = ['id,text'];
    let line = 2;
    for (let i = 0; i < 4000; i++) {
      const body = Array.from({ length: 1 + (i % 5) }, (_, j) => `€ row ${i} line ${j} ${'x'.repeat(60 + (i % 37))}`);
      parts.push(`r${i},"${body.join('\r\n')}"`);
      expected.push({ id: `r${i}`, startLine: line, endLine: line + body.length - 1 });
      line += body.length;
      if (i % 7 === 0) {
        parts.push('');
        line++;
      }
    }
    const text = parts.join('\r\n') + '\r\n';
    const got = await rows(file('csv', text));
    assert.deepEqual(
      got.map(({ id, startLine, endLine }) => ({ id, startLine, endLine })),
      expected,
    );
    // The same lines by an independent count: the written text split at its line ends.
    const physical = text.split('\n');
    for (const row of got) {
      assert.ok(physical[row.startLine - 1].startsWith(`${row.id},"`), `row ${row.id} starts on line ${row.startLine}`);
      assert.ok(physical[row.endLine - 1].endsWith('"\r'), `row ${row.id} ends on line ${row.endLine}`);
    }
    assert.equal(got[1].text, `€ row 1 line 0 ${'x'.repeat(61)}\r\n€ row 1 line 1 ${'x'.repeat(61)}`);
  });

  test('invalid UTF-8 far into the file is reported at its line; a character split by a chunk boundary is not', async () => {
    const head = 'id,text\n' + Array.from({ length: 3000 }, (_, i) => `r${i},${'€'.repeat(20)}\n`).join('');
    assert.equal((await rows(file('csv', head))).length, 3000);
    const bad = Buffer.concat([Buffer.from(head), Buffer.from('bad,caf\xe9\n', 'latin1'), Buffer.from('last,ok\n')]);
    const err = await inputError(() => rows(file('csv', bad)));
    assert.equal(err.line, 3002);
    assert.match(err.message, /UTF-8/);
  });

  test('every shard validates the whole file: a bad row in another shard still fails the build', async () => {
    const body = Array.from({ length: 50 }, (_, i) => `r${i},text ${i}`);
    body[40] = 'r40,"  "';
    const f = file('csv', `id,text\n${body.join('\n')}\n`);
    const other = { id: 1 - shardOf('r40', 2), count: 2 };
    const err = await inputError(() => rows(f, other));
    assert.deepEqual([err.line, err.column], [42, 'text']);
  });
});

describe('BEIR corpus.jsonl', () => {
  test('_id, title and text; numeric ids; blank lines, CRLF and a byte-order mark', async () => {
    const f = file(
      'jsonl',
      '\ufeff{"_id": "d1", "title": "Parser", "text": "parses CSV files"}\r\n\n{"_id": 7, "text": "no title"}\n{"_id":"d3","title":"Only a title","text":""}',
    );
    assert.deepEqual(await rows(f), [
      { id: 'd1', title: 'Parser', text: 'parses CSV files', startLine: 1, endLine: 1 },
      { id: '7', text: 'no title', startLine: 3, endLine: 3 },
      { id: 'd3', text: 'Only a title', startLine: 4, endLine: 4 },
    ]);
  });

  test('bad lines name their line and field', async () => {
    const cases: [string, number, RegExp][] = [
      ['{"_id":"a","text":"x"}\n{"_id":"b","text":\n', 2, /not valid JSON/],
      ['{"_id":"a","text":"x"}\n["a"]\n', 2, /JSON object/],
      ['{"text":"x"}\n', 1, /missing or empty _id/],
      ['{"_id":"a","text":5}\n', 1, /text of document "a" is not a string/],
      ['{"_id":"a","text":"x"}\n\n{"_id":"a","text":"y"}\n', 3, /duplicate id "a" \(first used on line 1\)/],
      ['{"_id":"a","title":" ","text":""}\n', 1, /no title or text/],
      ['\n\n', 1, /no documents/],
    ];
    for (const [content, line, message] of cases) {
      const err = await inputError(() => rows(file('jsonl', Buffer.from(content))));
      assert.equal(err.line, line, content);
      assert.match(err.message, message);
    }
  });
});

describe('shards', () => {
  test('shards partition the rows: disjoint, complete, in file order, the same on every run', async () => {
    const body = Array.from({ length: 1000 }, (_, i) => `{"_id":"doc-${i}","text":"text ${i}"}`).join('\n');
    const f = file('jsonl', body);
    const all = (await rows(f)).map((r) => r.id);
    const parts = await Promise.all([0, 1, 2, 3].map(async (id) => (await rows(f, { id, count: 4 })).map((r) => r.id)));
    assert.deepEqual(parts.flat().sort(), [...all].sort());
    for (const part of parts) {
      assert.ok(part.length > 200 && part.length < 300, `an even split, got ${part.length} of 1000`);
      assert.deepEqual(part, all.filter((id) => part.includes(id)), 'file order');
    }
    assert.deepEqual((await rows(f, { id: 2, count: 4 })).map((r) => r.id), parts[2]);
    assert.deepEqual(await rows(f, { id: 0, count: 1 }), await rows(f));
  });

  test('shard ids outside 0..N-1 and non-positive counts are refused with the valid range', () => {
    assert.throws(() => checkShard({ id: 4, count: 4 }), /numbered 0 to 3/);
    assert.throws(() => checkShard({ id: -1, count: 4 }), /out of range/);
    assert.throws(() => checkShard({ id: 0, count: 0 }), /positive integer/);
    checkShard({ id: 3, count: 4 });
  });
});
