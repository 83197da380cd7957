import { Option, type Command } from 'commander';
import { WorkspaceIndex, type SearchHit, type SearchMode } from '../index/workspace-index';
import { QUERY_TOWER_PRECISION } from '../encoder/precision';
import { isQueryTowerFor } from '../lsr/lsr-trainer';
import { addIndexDirOption, displayPath } from './index-dir';
import { addModelOptions, encoderFromOptions, type ModelCliOptions } from './model-options';
import { positiveInt } from './option-parsers';

interface SearchCliOptions extends ModelCliOptions {
  indexDir: string;
  k: number;
  mode?: SearchMode;
  json?: boolean;
}

const SNIPPET_LINES = 4;

export function registerSearchCommand(program: Command): void {
  const cmd = program
    .command('search')
    .description('Search an index; prints ranked passages as path:startLine-endLine with score and snippet.')
    .argument('<query>', 'identifier, code fragment or natural-language question')
    .option('-k, --k <n>', 'number of results', positiveInt, 10)
    .addOption(new Option('--mode <mode>', 'hybrid needs vectors; default: hybrid if the index has them, else lexical').choices(['hybrid', 'dense', 'lexical']))
    .option('--json', 'machine-readable results');
  addIndexDirOption(cmd);
  addModelOptions(cmd, "the index's; a trained query tower runs at fp32, as it was trained");
  cmd.action(async (query: string, opts: SearchCliOptions) => {
    const manifest = await WorkspaceIndex.readManifest(opts.indexDir).catch((err: Error) => {
      throw new Error(`the index at ${opts.indexDir} could not be read (${err.message}); run index again`);
    });
    if (!manifest) throw new Error(`no index at ${opts.indexDir}: run \`replug-code index <folder> --index-dir ${opts.indexDir}\` first`);
    // Dense queries must be embedded by the encoder the index was built with — or by a query tower trained
    // against its vectors (`train --mode query-tower`), which embeds queries while the stored vectors stay.
    const wanted = opts.mode === 'lexical' ? undefined : (opts.model ?? manifest.encoder?.model);
    const queryTower = wanted !== undefined && manifest.encoder !== undefined && isQueryTowerFor(wanted, manifest.encoder.fingerprint);
    const model = queryTower ? manifest.encoder!.model : wanted;
    // Queries are embedded at the precision of the stored vectors; a query tower at the fp32 of its training graph.
    const encoder = await encoderFromOptions({ ...opts, model, precision: opts.precision ?? manifest.encoder?.precision });
    const queryEncoder = queryTower ? await encoderFromOptions({ ...opts, model: wanted, precision: opts.precision ?? QUERY_TOWER_PRECISION }) : undefined;
    const index = await WorkspaceIndex.open(opts.indexDir, { encoder, queryEncoder, encoderSpec: model, readOnly: true });
    try {
      const hits = await index.search(query, { k: opts.k, mode: opts.mode });
      process.stdout.write(opts.json ? `${JSON.stringify(hits.map(toJson), null, 2)}\n` : formatHits(hits));
    } finally {
      await index.close();
      await encoder?.dispose();
      await queryEncoder?.dispose();
    }
  });
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
        .map((line) => `    ${line.slice(0, 160)}`)
        .join('\n');
      return `${i + 1}. ${where}  score ${hit.score.toFixed(4)}${parts.length ? ` (${parts.join(', ')})` : ''}\n${snippet}\n`;
    })
    .join('\n');
}
