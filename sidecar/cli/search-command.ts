import { Option, type Command } from 'commander';
import { readFile } from 'node:fs/promises';
import { WorkspaceIndex, type SearchHit, type SearchMode } from '../index/workspace-index';
import { isQueryTowerFor } from '../lsr/lsr-trainer';
import { addIndexDirOption, displayPath } from './index-dir';
import { addModelOptions, encoderFromOptions, type ModelCliOptions } from './model-options';
import { positiveInt } from './option-parsers';
import { escapeControls } from './printable';

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
  addModelOptions(cmd);
  cmd.action(async (argument: string | undefined, opts: SearchCliOptions) => {
    const query = await readQuery(argument, opts.queryFile);
    // A damaged index throws here with what to do; one with an intact older generation warns below.
    const manifest = await WorkspaceIndex.readManifest(opts.indexDir);
    if (!manifest) throw new Error(`no index at ${opts.indexDir}: run \`replug-code index <folder> --index-dir ${opts.indexDir}\` first`);
    // Dense queries must be embedded by the encoder the index was built with — or by a query tower trained
    // against its vectors (`train --mode query-tower`), which embeds queries while the stored vectors stay.
    const wanted = opts.mode === 'lexical' ? undefined : (opts.model ?? manifest.encoder?.model);
    const queryTower = wanted !== undefined && manifest.encoder !== undefined && isQueryTowerFor(wanted, manifest.encoder.fingerprint);
    const model = queryTower ? manifest.encoder!.model : wanted;
    const encoder = await encoderFromOptions({ ...opts, model });
    const queryEncoder = queryTower ? await encoderFromOptions({ ...opts, model: wanted }) : undefined;
    const index = await WorkspaceIndex.open(opts.indexDir, { encoder, queryEncoder, encoderSpec: model, readOnly: true });
    try {
      const { damage } = index.status();
      if (damage) process.stderr.write(`warning: ${damage}\n`);
      const embedder = queryEncoder ?? encoder;
      if (embedder && (opts.mode ?? (index.status().dense ? 'hybrid' : 'lexical')) !== 'lexical') {
        const tokens = embedder.countTokens(query);
        if (tokens > embedder.maxTokens) {
          process.stderr.write(`note: the query has ${tokens} tokens; the encoder reads the first ${embedder.maxTokens} (BM25 reads all of it)\n`);
        }
      }
      const hits = await index.search(query, { k: opts.k, mode: opts.mode });
      process.stdout.write(opts.json ? `${JSON.stringify(hits.map(toJson), null, 2)}\n` : formatHits(hits));
    } finally {
      await index.close();
      await encoder?.dispose();
      await queryEncoder?.dispose();
    }
  });
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
