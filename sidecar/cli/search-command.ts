import { Option, type Command } from 'commander';
import { readFile } from 'node:fs/promises';
import type { SearchHit, SearchMode } from '../index/workspace-index';
import { addIndexDirOption, displayPath } from './index-dir';
import { addModelOptions, type ModelCliOptions } from './model-options';
import { positiveInt } from './option-parsers';
import { escapeControls } from './printable';
import { openQueryIndex } from './query-index';

interface SearchCliOptions extends ModelCliOptions {
  indexDir: string;
  queryFile?: string;
  k: number;
  mode?: SearchMode;
  json?: boolean;
}

const SNIPPET_LINES = 4;

export function registerSearchCommand(program: Command): void {
  const cmd = program
    .command('search')
    .description('Search an index; prints ranked passages as path:startLine-endLine with score and snippet.')
    .argument('[query]', 'identifier, code fragment or natural-language question; - reads it from stdin')
    .option('--query-file <file>', 'read the query from a file (for long ones)')
    .option('-k, --k <n>', 'number of results', positiveInt, 10)
    .addOption(new Option('--mode <mode>', 'hybrid needs vectors; default: hybrid if the index has them, else lexical').choices(['hybrid', 'dense', 'lexical']))
    .option('--json', 'machine-readable results');
  addIndexDirOption(cmd);
  addModelOptions(cmd, "the index's; a trained query tower runs at fp32, as it was trained");
  cmd.action(async (argument: string | undefined, opts: SearchCliOptions) => {
    const query = await readQuery(argument, opts.queryFile);
    // A damaged index throws here with what to do; one with an intact older generation warns below.
    const { index, queryEncoder, close } = await openQueryIndex(opts.indexDir, opts, opts.mode === 'lexical');
    try {
      const { damage, dense } = index.status();
      if (damage) process.stderr.write(`warning: ${damage}\n`);
      const mode = opts.mode ?? (dense ? 'hybrid' : 'lexical');
      if (queryEncoder && mode !== 'lexical') {
        const tokens = queryEncoder.countTokens(query);
        if (tokens > queryEncoder.maxTokens) {
          process.stderr.write(`note: the query has ${tokens} tokens; the encoder reads the first ${queryEncoder.maxTokens} (BM25 reads all of it)\n`);
        }
      }
      const hits = await index.search(query, { k: opts.k, mode: opts.mode });
      process.stdout.write(opts.json ? `${JSON.stringify(hits.map(toJson), null, 2)}\n` : `${header(query, mode, hits.length)}${formatHits(hits)}`);
    } finally {
      await close();
    }
  });
}

/** What was searched, so a reader of the output (or of the demo) sees the query beside its results. */
function header(query: string, mode: SearchMode, count: number): string {
  const shown = query.length > 80 ? `${query.slice(0, 79)}…` : query;
  return `${count} result${count === 1 ? '' : 's'} for "${escapeControls(shown.replace(/\s+/g, ' ').trim())}" (${mode})\n\n`;
}

const GIVE_A_QUERY = 'give a query: search "QUERY", search --query-file FILE, or search - to read it from stdin';

/** The query from exactly one of: the argument, `-` (stdin), or --query-file; blank is an error, not arbitrary hits. */
async function readQuery(argument: string | undefined, file: string | undefined): Promise<string> {
  if (argument !== undefined && file !== undefined) throw new Error(`give the query once, not both as an argument and with --query-file`);
  let query: string;
  if (file !== undefined) query = await readFile(file, 'utf8');
  else if (argument === '-') query = await readStdin();
  else query = argument ?? '';
  if (query.trim() === '') throw new Error(`${file !== undefined ? `${file} holds no query` : argument === '-' ? 'stdin held no query' : 'the query is empty'}; ${GIVE_A_QUERY}`);
  return query;
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

function toJson(hit: SearchHit, i: number) {
  const { passage } = hit;
  return {
    rank: i + 1,
    path: passage.path,
    startLine: passage.startLine,
    endLine: passage.endLine,
    docId: passage.docId,
    score: hit.score,
    denseScore: hit.denseScore,
    lexicalScore: hit.lexicalScore,
    text: passage.text,
  };
}

function formatHits(hits: SearchHit[]): string {
  if (hits.length === 0) return 'no results\n';
  return hits
    .map((hit, i) => {
      const p = hit.passage;
      const parts = [
        hit.denseScore !== undefined ? `dense ${hit.denseScore.toFixed(3)}` : undefined,
        hit.lexicalScore !== undefined ? `bm25 ${hit.lexicalScore.toFixed(2)}` : undefined,
      ].filter(Boolean);
      const where = `${displayPath(p.path)}:${p.startLine}-${p.endLine}${p.docId ? ` [${p.docId}]` : ''}`;
      const snippet = p.text
        .split('\n')
        .filter((line) => line.trim() !== '')
        .slice(0, SNIPPET_LINES)
        .map((line) => `    ${escapeControls(line.slice(0, 160))}`)
        .join('\n');
      return `${i + 1}. ${where}  score ${hit.score.toFixed(4)}${parts.length ? ` (${parts.join(', ')})` : ''}\n${snippet}\n`;
    })
    .join('\n');
}
