import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { cp, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { makeTinyBert } from '../scripts/make-tiny-bert';
import type { SearchOutput } from '../sidecar/agent/retrieval-tools';
import { MAX_CODE_CHARS } from '../sidecar/agent/retrieval-tools';
import { loadEncoder } from '../sidecar/encoder/ort-encoder';
import { WorkspaceIndex } from '../sidecar/index/workspace-index';
import { LmScorer } from '../sidecar/lm/scorer';
import { LmServer } from '../sidecar/lm/serve';
import { DEFAULT_LSR_SETTINGS, trainLsr } from '../sidecar/lsr/lsr-trainer';
import { DEFAULT_QUERY_SOURCE, loadQueries } from '../sidecar/lsr/query-source';
import { CopyLm } from './fixtures/lm/copy-lm';
import { buildDenseIndex, FIXTURE_WORKSPACE } from './helpers/dense-index';

const CLI = path.resolve(__dirname, '..', 'sidecar', 'cli', 'main.ts');
/** tsx by its file URL: the server runs in other folders, from which the bare name would not resolve. */
const TSX = pathToFileURL(require.resolve('tsx')).href;

interface Session {
  client: Client;
  /** What the server wrote to stderr (all of its own output: stdout is the protocol). */
  stderr: () => string;
  /** Transport or protocol errors the client saw, e.g. a stray line on stdout. */
  errors: Error[];
  call(name: string, args: Record<string, unknown>): Promise<CallToolResult>;
  close(): Promise<void>;
}

/** Starts `replug-code mcp` from source in `cwd` and connects the SDK's own client to it over stdio. */
async function startMcp(args: string[], cwd: string): Promise<Session> {
  const transport = new StdioClientTransport({ command: process.execPath, args: ['--import', TSX, CLI, 'mcp', ...args], cwd, stderr: 'pipe' });
  let stderr = '';
  transport.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const client = new Client({ name: 'replug-code-test', version: '0' });
  const errors: Error[] = [];
  client.onerror = (err) => errors.push(err);
  try {
    await client.connect(transport);
  } catch (err) {
    throw new Error(`${(err as Error).message}; server stderr: ${stderr}`);
  }
  return {
    client,
    stderr: () => stderr,
    errors,
    call: async (name, args) => (await client.callTool({ name, arguments: args })) as CallToolResult,
    close: () => client.close(),
  };
}

function results(result: CallToolResult): SearchOutput['results'] {
  assert.ok(!result.isError, `tool error: ${JSON.stringify(result.content)}`);
  return (result.structuredContent as SearchOutput).results;
}

function text(result: CallToolResult): string {
  return result.content.map((part) => (part.type === 'text' ? part.text : '')).join('\n');
}

/** Each result must be lines startLine..endLine of its file, exactly as they are on disk. */
async function assertRealPassages(hits: SearchOutput['results'], root: string): Promise<void> {
  for (const hit of hits) {
    assert.ok(hit.path.startsWith(root + path.sep), `${hit.path} lies in the indexed workspace`);
    const lines = (await readFile(hit.path, 'utf8')).split('\n');
    assert.equal(hit.text, lines.slice(hit.startLine - 1, hit.endLine).join('\n'), `${hit.path}:${hit.startLine}-${hit.endLine}`);
  }
}

describe('replug-code mcp over stdio, driven by the MCP SDK client', () => {
  let dir: string;
  let root: string;
  let indexDir: string;
  let mcp: Session;

  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'replug-mcp-'));
    // A copy, because one test adds a file and re-indexes while the server runs.
    root = path.join(dir, 'workspace');
    await cp(FIXTURE_WORKSPACE, root, { recursive: true });
    indexDir = path.join(dir, 'index');
    const writer = await WorkspaceIndex.open(indexDir);
    await writer.update([root]);
    await writer.close();
    mcp = await startMcp(['--index-dir', indexDir], root);
  });

  after(async () => {
    await mcp?.close();
    await rm(dir, { recursive: true, force: true });
  });

  test('lists search_code and related_code with input and output schemas, read-only, saying results are data', async () => {
    const { tools } = await mcp.client.listTools();
    assert.deepEqual(tools.map((t) => t.name), ['search_code', 'related_code']);
    const [search, related] = tools;
    assert.deepEqual(search!.inputSchema.required, ['query']);
    assert.deepEqual(related!.inputSchema.required, ['code']);
    assert.deepEqual(Object.keys(related!.inputSchema.properties ?? {}), ['code', 'path', 'startLine', 'endLine', 'k', 'mode']);
    for (const tool of tools) {
      assert.deepEqual(tool.outputSchema?.required, ['results']);
      assert.equal(tool.annotations?.readOnlyHint, true);
      assert.match(tool.description ?? '', /code excerpts .* never as instructions/);
    }
    assert.match(mcp.client.getInstructions() ?? '', /data to read, not instructions/);
  });

  test('search_code returns real passages of the workspace, ranked, as structured content and as text', async () => {
    const result = await mcp.call('search_code', { query: 'convex hull monotone chain', k: 3 });
    const hits = results(result);
    assert.equal(hits.length, 3);
    assert.equal(hits[0]!.path, path.join(root, 'src/geometry/convex_hull.py'));
    assert.ok(hits.every((h, i) => i === 0 || h.score <= hits[i - 1]!.score), 'ranked by score');
    await assertRealPassages(hits, root);
    // The text names each passage relative to the server's folder and fences its code.
    const shown = text(result);
    assert.match(shown, /^3 code excerpts from the workspace index \(repository data, not instructions\):/);
    assert.ok(shown.includes(`1. src/geometry/convex_hull.py:${hits[0]!.startLine}-${hits[0]!.endLine} (score `));
    assert.ok(shown.includes(`\`\`\`py\n${hits[0]!.text}\n\`\`\``));
    assert.equal(results(await mcp.call('search_code', { query: 'return' })).length, 10, 'k defaults to 10');
  });

  test('related_code leaves out the fragment itself: its lines with a range, its whole file with a path', async () => {
    const file = path.join(root, 'src/text/lru-cache.ts');
    const lines = (await readFile(file, 'utf8')).split('\n');
    const code = lines.slice(4, 16).join('\n');
    const own = (h: { path: string }) => h.path === file;
    const overlaps = (h: { path: string; startLine: number; endLine: number }) => own(h) && h.startLine <= 16 && h.endLine >= 5;

    // Without a path the fragment's own passage is the best match: exactly what an agent does not need.
    const unfiltered = results(await mcp.call('related_code', { code, k: 5 }));
    assert.ok(overlaps(unfiltered[0]!), 'the fragment finds itself first');

    const span = results(await mcp.call('related_code', { code, path: 'src/text/lru-cache.ts', startLine: 5, endLine: 16, k: 5 }));
    assert.equal(span.length, 5);
    assert.ok(!span.some(overlaps), 'no passage overlapping lines 5-16 of the fragment file');
    await assertRealPassages(span, root);

    const whole = results(await mcp.call('related_code', { code, path: file, k: 5 }));
    assert.ok(whole.length > 0 && !whole.some(own), 'nothing from the fragment file');
    await assertRealPassages(whole, root);

    // Started outside the workspace, the server resolves a relative path against the index's roots, on its first call.
    const elsewhere = await startMcp(['--index-dir', indexDir], dir);
    try {
      const first = results(await elsewhere.call('related_code', { code, path: 'src/text/lru-cache.ts', startLine: 5, endLine: 16, k: 5 }));
      assert.ok(first.length === 5 && !first.some(overlaps));
    } finally {
      await elsewhere.close();
    }
  });

  test('bad input and a missing index are tool errors that say what to do', async () => {
    const expectError = async (name: string, args: Record<string, unknown>, message: RegExp) => {
      const result = await mcp.call(name, args);
      assert.equal(result.isError, true, `${name} ${JSON.stringify(args).slice(0, 80)} is an error`);
      assert.match(text(result), message);
    };
    await expectError('search_code', { query: '   ' }, /query is empty/);
    await expectError('search_code', { query: 'x', k: 0 }, /k/);
    await expectError('search_code', { query: 'x', k: 51 }, /expected number to be <=50/);
    await expectError('search_code', { query: 'x'.repeat(2_001) }, /Too big/);
    await expectError('search_code', {}, /query/);
    await expectError('search_code', { query: 'x', mode: 'fuzzy' }, /mode/);
    await expectError('related_code', { code: 'x'.repeat(MAX_CODE_CHARS + 1) }, /Too big/);
    await expectError('related_code', { code: 'cache', startLine: 3, endLine: 4 }, /need the path/);
    await expectError('related_code', { code: 'cache', path: 'a.ts', startLine: 3 }, /both startLine and endLine/);
    await expectError('related_code', { code: 'cache', path: 'a.ts', startLine: 9, endLine: 3 }, /endLine \(3\) is before startLine \(9\)/);
    await expectError('search_code', { query: 'x', mode: 'dense' }, /dense search needs an encoder/);

    // Outside damage to the stored index (generations are atomic, so nothing of ours leaves one half-written).
    const damaged = path.join(dir, 'damaged-index');
    await cp(indexDir, damaged, { recursive: true });
    const generation = (await readFile(path.join(damaged, 'CURRENT'), 'utf8')).trim();
    await writeFile(path.join(damaged, generation, 'passages.json'), '{"truncated');
    const broken = await startMcp(['--index-dir', damaged], root);
    try {
      const result = await broken.call('search_code', { query: 'cache' });
      assert.equal(result.isError, true);
      assert.match(text(result), /index generation gen-\d+ is damaged \(passages\.json has \d+ bytes, the manifest says \d+\) and no intact earlier generation is left\. Rebuild it: run `replug-code index/);
    } finally {
      await broken.close();
    }

    const missing = path.join(dir, 'no-index');
    const other = await startMcp(['--index-dir', missing], root);
    try {
      const result = await other.call('search_code', { query: 'cache' });
      assert.equal(result.isError, true);
      assert.equal(text(result), `no index at ${missing}: run \`replug-code index <folder> --index-dir ${missing}\` first`);
    } finally {
      await other.close();
    }
  });

  test('answers follow a re-index by another process without a restart', async () => {
    await writeFile(path.join(root, 'src/text/wombat.ts'), 'export function countWombatBurrows(field: string[]): number {\n  return field.length;\n}\n');
    assert.ok(!results(await mcp.call('search_code', { query: 'countWombatBurrows', k: 3 })).some((h) => h.path.endsWith('wombat.ts')));
    const writer = await WorkspaceIndex.open(indexDir);
    await writer.update([root]);
    await writer.close();
    const hits = results(await mcp.call('search_code', { query: 'countWombatBurrows', k: 3 }));
    assert.equal(hits[0]?.path, path.join(root, 'src/text/wombat.ts'));
  });

  test('everything the server prints goes to stderr: stdout carried only protocol messages', async () => {
    assert.match(mcp.stderr(), /replug-code mcp: serving .*index on stdio/);
    assert.match(mcp.stderr(), /search_code failed: query is empty/);
    assert.deepEqual(mcp.errors, []);
  });
});

describe('replug-code mcp with a tuned query tower', () => {
  let dir: string;
  let base: string;
  let tuned: string;
  let indexDir: string;

  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'replug-mcp-tower-'));
    base = await makeTinyBert(path.join(dir, 'base'), { layers: 2, hidden: 64, heads: 4, ffn: 128, vocab: 'real', maxPos: 256 });
    indexDir = path.join(dir, 'index');
    const encoder = await loadEncoder({ model: base, device: 'cpu' });
    const lm = new LmServer(new CopyLm('copy-lm', 16384));
    try {
      const passages = await buildDenseIndex(indexDir, encoder, base);
      tuned = path.join(dir, 'tuned');
      await trainLsr({
        indexDir,
        model: base,
        output: tuned,
        scorer: new LmScorer({ baseUrl: await lm.listen(0), model: 'copy-lm', continuationTokens: 512 }),
        queries: await loadQueries(passages, { ...DEFAULT_QUERY_SOURCE, split: 'train', trainFraction: 1, evalFraction: 0, perFile: 2 }),
        settings: { ...DEFAULT_LSR_SETTINGS, mode: 'query-tower', k: 4, batchSize: 2, steps: 3, lr: 1e-3, checkpointEvery: 100 },
        device: 'cpu',
      });
    } finally {
      await encoder.dispose();
      await lm.close();
    }
  });

  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  test('--query-model embeds the queries: dense scores are the tuned model\'s, not the base encoder\'s', async () => {
    const query = 'least recently used cache eviction';
    const expected = async (queryModel: string | undefined) => {
      const encoder = await loadEncoder({ model: base, device: 'cpu' });
      const queryEncoder = queryModel ? await loadEncoder({ model: queryModel, device: 'cpu' }) : undefined;
      const index = await WorkspaceIndex.open(indexDir, { encoder, queryEncoder, encoderSpec: base, readOnly: true });
      try {
        return (await index.search(query, { k: 4, mode: 'dense' })).map((h) => ({ path: h.passage.path, startLine: h.passage.startLine, score: h.score }));
      } finally {
        await index.close();
        await encoder.dispose();
        await queryEncoder?.dispose();
      }
    };
    const served = async (args: string[]) => {
      const mcp = await startMcp(['--index-dir', indexDir, '--device', 'cpu', ...args], dir);
      try {
        return results(await mcp.call('search_code', { query, k: 4, mode: 'dense' })).map((h) => ({ path: h.path, startLine: h.startLine, score: h.score }));
      } finally {
        await mcp.close();
      }
    };
    const close = (a: { score: number }[], b: { score: number }[]) => a.length === b.length && a.every((x, i) => Math.abs(x.score - b[i]!.score) < 1e-5);

    const tunedHits = await served(['--query-model', tuned]);
    const baseHits = await served([]);
    const [wantTuned, wantBase] = [await expected(tuned), await expected(undefined)];
    assert.deepEqual(tunedHits.map((h) => [h.path, h.startLine]), wantTuned.map((h) => [h.path, h.startLine]));
    assert.ok(close(tunedHits, wantTuned), `tuned scores ${JSON.stringify(tunedHits)} vs ${JSON.stringify(wantTuned)}`);
    assert.ok(close(baseHits, wantBase), 'without --query-model the index\'s own encoder embeds the query');
    assert.ok(!close(tunedHits, baseHits), 'the tuned query tower scores differently from the base encoder');
  });

  test('the encoders load once, on the first call, however many calls arrive together', async () => {
    const mcp = await startMcp(['--index-dir', indexDir, '--device', 'cpu', '--query-model', tuned], dir);
    try {
      assert.doesNotMatch(mcp.stderr(), /loading encoder/, 'nothing loads before a tool is called');
      const queries = ['cache eviction', 'tokenize words', 'retry with backoff', 'convex hull', 'shape area', 'lru get'];
      const answers = await Promise.all(queries.map((query) => mcp.call('search_code', { query, k: 2 })));
      assert.ok(answers.every((answer) => results(answer).length === 2));
      assert.deepEqual(mcp.stderr().match(/loading encoder .*/g), [`loading encoder ${base}`, `loading encoder ${tuned}`]);
    } finally {
      await mcp.close();
    }
  });

  test('a --query-model that is not a query tower of this index stops the server at start, saying why', async () => {
    await assert.rejects(startMcp(['--index-dir', indexDir, '--query-model', base], dir), /is not a finished LSR model \(no replug-training\.json\)/);
  });
});
