import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { makeTinyBert } from '../scripts/make-tiny-bert';
import { WorkspaceIndex } from '../sidecar/index/workspace-index';
import { FIXTURE_WORKSPACE } from './helpers/dense-index';

const CLI = [process.execPath, '--import', 'tsx', path.resolve(__dirname, '..', 'sidecar', 'cli', 'main.ts')];
const run = (args: string[], input?: string) => spawnSync(CLI[0], [...CLI.slice(1), ...args], { encoding: 'utf8', input });

/** 100 KB of code-like words: thousands of tokens, far over any encoder's budget. */
const LONG_QUERY = Array.from({ length: 20_000 }, (_, i) => ['parse', 'csv', 'row', 'cache', 'retry', 'shape'][i % 6] + (i % 7))
  .join(' ')
  .slice(0, 100_000);

describe('long and empty queries', () => {
  let dir: string;
  let indexDir: string;
  before(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'replug-query-'));
    indexDir = path.join(dir, 'index');
    const model = await makeTinyBert(path.join(dir, 'bert'), { maxPos: 128 });
    const index = run(['index', FIXTURE_WORKSPACE, '--index-dir', indexDir, '--model', model, '--device', 'cpu']);
    assert.equal(index.status, 0, index.stderr);
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  test('a 100 KB query is truncated for the encoder, from the command line, a file or stdin, dense and hybrid', () => {
    assert.equal(LONG_QUERY.length, 100_000);
    const file = path.join(dir, 'query.txt');
    writeFileSync(file, LONG_QUERY);
    for (const mode of ['dense', 'hybrid']) {
      for (const [how, args, input] of [
        ['argument', [LONG_QUERY], undefined],
        ['--query-file', ['--query-file', file], undefined],
        ['stdin', ['-'], LONG_QUERY],
      ] as const) {
        const result = run(['search', ...args, '--index-dir', indexDir, '--mode', mode, '--device', 'cpu', '-k', '3'], input);
        const what = `${mode} via ${how}`;
        assert.equal(result.status, 0, `${what}: ${result.stderr}`);
        assert.match(result.stdout, /^1\. .*:\d+-\d+ {2}score /m, what);
        assert.match(result.stderr, /note: the query has \d+ tokens; the encoder reads the first 128/, what);
      }
    }
  });

  test('an empty or blank query is an error that says how to give one', async () => {
    const empty = path.join(dir, 'empty.txt');
    writeFileSync(empty, ' \n\t\n');
    for (const [args, input, why] of [
      [[''], undefined, /the query is empty/],
      [['   '], undefined, /the query is empty/],
      [[], undefined, /the query is empty/],
      [['--query-file', empty], undefined, /empty\.txt holds no query/],
      [['-'], '\n', /stdin held no query/],
    ] as const) {
      const result = run(['search', ...args, '--index-dir', indexDir, '--mode', 'lexical'], input);
      assert.equal(result.status, 1, String(args));
      assert.match(result.stderr, why);
      assert.match(result.stderr, /give a query: search "QUERY", search --query-file FILE, or search - to read it from stdin/);
    }
    const both = run(['search', 'x', '--query-file', empty, '--index-dir', indexDir]);
    assert.equal(both.status, 1);
    assert.match(both.stderr, /give the query once/);

    const index = await WorkspaceIndex.open(indexDir, { readOnly: true });
    try {
      await assert.rejects(index.search(' \n', { mode: 'lexical' }), /give a query/);
    } finally {
      await index.close();
    }
  });
});
