// Syntax-aware chunking against 20-line windows, on the same inputs in one run:
// (a) code search: the labelled set of scripts/chunking-set.ts (a documented function's first sentence as the query,
//     its definition as gold; doc comments blanked, and again with them kept), over each workspace's passages by BM25
//     and by the offline starter encoder (`replug-code starter-encoder`, the dense retriever a user has before training),
//     the dense one on a seeded sample of the workspaces (--dense-workspaces) to keep the run to minutes.
//     A passage is relevant when it lies in the gold file and shares at least half of the shorter one's non-blank lines
//     with the definition (it holds most of the function, or lies mostly inside it); recall@10 is the share of the
//     definition's lines the top 10 cover, which no chunker can game by cutting smaller or overlapping passages.
// (b) held-out LSR points: REPLUG ensemble bits/byte of held-out continuations under the copy-LM test teacher
//     (evaluate.ts, as `eval --held-out points` computes it, query by query), with the starter encoder as the base
//     retriever and with BM25's top 10 equally weighted, on one real corpus per language.
// Differences are syntax − lines per query with their paired standard error, and clustered by workspace (a) or by file
// (b). About 7 minutes on two shared cores.
//   npm run measure:chunking -- [--part search|lsr|all] [--per-workspace 40] [--dense-workspaces 40] [--points 200]
//     [--python STDLIB_DIR] [--work DIR]
import { execFileSync } from 'node:child_process';
import { existsSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { estimateTokens, splitLines } from '../sidecar/corpus/chunk';
import { DEFAULT_FILE_CHUNKING, FileChunker, type ChunkingStrategy } from '../sidecar/corpus/file-chunker';
import type { Passage } from '../sidecar/corpus/passage';
import { languageOf } from '../sidecar/corpus/syntax-languages';
import { loadEncoder, type RuntimeEncoder } from '../sidecar/encoder/ort-encoder';
import { makeTinyBert, STARTER_ENCODER } from '../sidecar/encoder/random-bert';
import { bitsPerByte, ensembleLogProb } from '../sidecar/eval/ensemble';
import { evaluateRetrievers } from '../sidecar/eval/evaluate';
import { ndcgAt, pairedDifference, reciprocalRank } from '../sidecar/eval/ranking-metrics';
import { LexicalIndex } from '../sidecar/index/lexical-index';
import { WorkspaceIndex } from '../sidecar/index/workspace-index';
import { LmScorer } from '../sidecar/lm/scorer';
import { LmServer } from '../sidecar/lm/serve';
import { ownSource } from '../sidecar/lsr/lsr-trainer';
import { DEFAULT_QUERY_SOURCE, loadQueries } from '../sidecar/lsr/query-source';
import { seededRandom, type TrainingQuery } from '../sidecar/lsr/training-queries';
import { CopyLm } from '../test/fixtures/lm/copy-lm';
import { loadWorkspace, packageWorkspaces, pythonWorkspaces, type SetQuery, type Workspace } from './chunking-set';

const root = path.resolve(__dirname, '..');
const modules = path.join(root, 'node_modules');
const STRATEGIES: ChunkingStrategy[] = ['lines', 'syntax'];
const K = 10;
const POOL = 100;
/** As the learning test's evaluation. */
const GAMMA = 0.05;

const { values: args } = parseArgs({
  options: {
    part: { type: 'string', default: 'all' },
    'per-workspace': { type: 'string', default: '40' },
    'dense-workspaces': { type: 'string', default: '40' },
    points: { type: 'string', default: '200' },
    python: { type: 'string' },
    work: { type: 'string', default: path.join(os.tmpdir(), 'replug-measure-chunking') },
  },
});

/** One query's scores under both strategies, in STRATEGIES order. */
interface Row {
  group: string;
  cluster: string;
  metrics: Record<string, number[]>;
}

async function main(): Promise<void> {
  const python = args.python ?? systemPythonStdlib();
  log(python ? `Python standard library: ${python}` : 'no Python standard library found: Python is left out');
  const model = path.join(args.work!, 'starter-encoder');
  if (!existsSync(path.join(model, 'config.json'))) await makeTinyBert(model, { ...STARTER_ENCODER, seed: 1 });
  const encoder = await loadEncoder({ model });
  try {
    if (args.part !== 'lsr') await measureSearch(python, encoder);
    if (args.part !== 'search') await measureLsr(python, encoder, model);
  } finally {
    await encoder.dispose();
  }
}

// ---------- (a) code search on the labelled set ----------

const RETRIEVERS = ['BM25', 'starter encoder'] as const;
type Retriever = (typeof RETRIEVERS)[number];
type RetrieverRows = Record<Retriever, Row[]>;

async function measureSearch(python: string | undefined, encoder: RuntimeEncoder): Promise<void> {
  const perWorkspace = Number(args['per-workspace']);
  const workspaces = [...packageWorkspaces(modules), ...(python ? pythonWorkspaces(python) : [])];
  const dense = new Set(seededSample(workspaces, Number(args['dense-workspaces']), 'chunking-set:dense').map((w) => w.name));
  const rows = { blanked: { BM25: [], 'starter encoder': [] } as RetrieverRows, kept: { BM25: [], 'starter encoder': [] } as RetrieverRows };
  const passageStats = new Map<string, { passages: number; lines: number; tokens: number }>();
  let queries = 0;
  for (const w of workspaces) {
    const set = await loadWorkspace(w.name, w.root, 'only' in w ? (w.only as string[]) : undefined);
    if (set.queries.length === 0) continue;
    const chosen = seededSample(set.queries, perWorkspace, `chunking-set:${w.name}`);
    queries += chosen.length;
    for (const docs of ['blanked', 'kept'] as const) {
      const files = docs === 'blanked' ? set.files : await originalTexts(set);
      const scored = await scoreWorkspace(files, chosen, dense.has(w.name) ? encoder : undefined, docs === 'blanked' ? passageStats : undefined);
      for (const r of RETRIEVERS) rows[docs][r].push(...scored[r]);
    }
  }
  console.log(`\n(a) code search: ${queries} queries (at most ${perWorkspace} per workspace), ranked among each workspace's passages`);
  console.log('passages per language (docs blanked):');
  for (const [key, s] of [...passageStats].sort()) {
    console.log(`  ${key.padEnd(20)} ${String(s.passages).padStart(7)} passages, ${(s.lines / s.passages).toFixed(1)} lines and ${(s.tokens / s.passages).toFixed(0)} tokens each`);
  }
  for (const docs of ['blanked', 'kept'] as const) {
    for (const r of RETRIEVERS) {
      console.log(`\n${r}, doc comments ${docs === 'blanked' ? 'blanked (the query words are not in the corpus)' : 'kept'}:`);
      printTable(rows[docs][r], ['nDCG@10', 'recall@10', 'MRR'], 'workspaces');
    }
  }
}

/** The workspace's files as written (the set holds them with doc comments blanked). */
async function originalTexts(set: Workspace) {
  const { readFile } = await import('node:fs/promises');
  return Promise.all(set.files.map(async (f) => ({ path: f.path, text: await readFile(f.path, 'utf8') })));
}

/** Each query's metrics under both strategies, by BM25 and (with an encoder) by dense search. */
async function scoreWorkspace(
  files: { path: string; text: string }[],
  queries: SetQuery[],
  encoder: RuntimeEncoder | undefined,
  stats: Map<string, { passages: number; lines: number; tokens: number }> | undefined,
): Promise<RetrieverRows> {
  const lines = new Map(files.map((f) => [f.path, splitLines(f.text)]));
  const newRows = (): Row[] => queries.map((q) => ({ group: q.language, cluster: q.workspace, metrics: { 'nDCG@10': [], 'recall@10': [], MRR: [] } }));
  const rows: RetrieverRows = { BM25: newRows(), 'starter encoder': encoder ? newRows() : [] };
  const queryVectors = encoder ? await encoder.embed(queries.map((q) => q.text)) : [];
  for (const strategy of STRATEGIES) {
    const chunker = new FileChunker({ ...DEFAULT_FILE_CHUNKING, strategy });
    const lexical = LexicalIndex.create();
    const byId = new Map<string, Passage>();
    const byFile = new Map<string, Passage[]>();
    for (const file of files) {
      const { passages } = await chunker.chunk(file, estimateTokens);
      for (const p of passages) {
        lexical.add(p);
        byId.set(p.id, p);
      }
      byFile.set(file.path, passages);
      const language = languageOf(file.path)?.id ?? 'other';
      if (stats) {
        const s = stats.get(`${language} ${strategy}`) ?? { passages: 0, lines: 0, tokens: 0 };
        for (const p of passages) {
          s.passages++;
          s.lines += p.endLine - p.startLine + 1;
          s.tokens += estimateTokens(p.text);
        }
        stats.set(`${language} ${strategy}`, s);
      }
    }
    const ranked: Partial<Record<Retriever, string[][]>> = { BM25: queries.map((q) => lexical.search(q.text, POOL).map((h) => h.id)) };
    if (encoder) ranked['starter encoder'] = await denseRankings(encoder, [...byId.values()], queryVectors);
    queries.forEach((q, i) => {
      const fileLines = lines.get(q.path)!;
      const nonBlank = (first: number, last: number) => {
        const rows: number[] = [];
        for (let r = first; r <= last; r++) if (fileLines[r - 1]?.trim()) rows.push(r);
        return rows;
      };
      const gold = new Set(nonBlank(q.startLine, q.endLine));
      const relevant = new Set(
        (byFile.get(q.path) ?? [])
          .filter((p) => {
            const own = nonBlank(p.startLine, p.endLine);
            const shared = own.filter((r) => gold.has(r)).length;
            return shared > 0 && shared >= Math.min(gold.size, own.length) / 2;
          })
          .map((p) => p.id),
      );
      for (const [retriever, rankings] of Object.entries(ranked) as [Retriever, string[][]][]) {
        const covered = new Set<number>();
        for (const id of rankings[i].slice(0, K)) {
          const p = byId.get(id)!;
          if (p.path === q.path) for (let r = p.startLine; r <= p.endLine; r++) if (gold.has(r)) covered.add(r);
        }
        const m = rows[retriever][i].metrics;
        m['nDCG@10'].push(ndcgAt(rankings[i], relevant, K));
        m['recall@10'].push(gold.size ? covered.size / gold.size : 0);
        m.MRR.push(reciprocalRank(rankings[i], relevant));
      }
    });
  }
  return rows;
}

/** The top POOL passage ids by cosine similarity (the vectors are L2-normalised) for each query vector. */
async function denseRankings(encoder: RuntimeEncoder, passages: Passage[], queryVectors: Float32Array[]): Promise<string[][]> {
  const vectors = await encoder.embed(passages.map((p) => p.text));
  return queryVectors.map((q) => {
    const scored = vectors.map((v, j) => {
      let dot = 0;
      for (let d = 0; d < q.length; d++) dot += q[d] * v[d];
      return { id: passages[j].id, dot };
    });
    return scored
      .sort((a, b) => b.dot - a.dot)
      .slice(0, POOL)
      .map((s) => s.id);
  });
}

// ---------- (b) held-out LSR points ----------

async function measureLsr(python: string | undefined, encoder: RuntimeEncoder, model: string): Promise<void> {
  const corpora: { language: string; roots: string[] }[] = [
    { language: 'javascript', roots: ['execa/lib', 'mocha/lib'].map((p) => path.join(modules, p)) },
    { language: 'typescript', roots: [path.join(modules, 'openai', 'src')] },
  ];
  if (python) corpora.push({ language: 'python', roots: ['json', 'email', 'asyncio', 'http'].map((p) => path.join(python, p)) });
  const rows: Row[] = [];
  for (const corpus of corpora) {
    if (!corpus.roots.every(existsSync)) {
      log(`skipping ${corpus.language}: ${corpus.roots.join(', ')} missing`);
      continue;
    }
    // A fresh teacher per corpus: the copy-LM's vocabulary fills with every piece it sees.
    const server = new LmServer(new CopyLm('copy-lm', 65536));
    const scorer = new LmScorer({ baseUrl: await server.listen(0), model: 'copy-lm', continuationTokens: 512 });
    try {
      rows.push(...(await lsrCorpus(corpus.language, corpus.roots, encoder, model, scorer)));
    } finally {
      await server.close();
    }
  }
  console.log(`\n(b) held-out LSR points: REPLUG bits/byte of the continuation, mean over points (lower is better), k = ${K}, γ = ${GAMMA}`);
  printTable(rows, ['no retrieval', 'starter encoder', 'BM25 uniform'], 'files', true);
}

async function lsrCorpus(language: string, roots: string[], encoder: RuntimeEncoder, model: string, scorer: LmScorer): Promise<Row[]> {
  let points: TrainingQuery[] | undefined;
  const perQuery: { bytes: number; bits: number[] }[][] = [];
  for (const strategy of STRATEGIES) {
    // Built afresh each run: an index left by an earlier version of a chunker would keep its passages.
    const dir = path.join(args.work!, `index-${language}-${strategy}`);
    rmSync(dir, { recursive: true, force: true });
    const writer = await WorkspaceIndex.open(dir, { encoder, encoderSpec: model, chunking: { strategy } });
    await writer.update(roots);
    await writer.close();
    const index = await WorkspaceIndex.open(dir, { encoder, encoderSpec: model, readOnly: true });
    try {
      const source = { ...DEFAULT_QUERY_SOURCE, perFile: 10, trainFraction: 0.7, evalFraction: 0.3 };
      const heldOut = await loadQueries(index.passages(), { ...source, split: 'eval-points' });
      const chosen = seededSample(heldOut, Number(args.points), `chunking-lsr:${language}`);
      // Points are cut from files, not passages: both indexes must give the same ones.
      if (points && chosen.map((q) => q.id).join() !== points.map((q) => q.id).join()) throw new Error(`${language}: the strategies sampled different points`);
      points = chosen;
      log(`${language} ${strategy}: ${index.passages().length} passages, ${chosen.length} held-out points`);
      perQuery.push(await lsrScores(index, encoder, model, scorer, chosen));
    } finally {
      await index.close();
    }
  }
  return points!.map((q, i) => ({
    group: language,
    cluster: q.path,
    metrics: {
      'no retrieval': perQuery.map((s) => s[i].bits[0]),
      'starter encoder': perQuery.map((s) => s[i].bits[1]),
      'BM25 uniform': perQuery.map((s) => s[i].bits[2]),
    },
  }));
}

/** Per point: bits/byte with no retrieval, with the base retriever's ensemble, and with BM25's top k equally weighted. */
async function lsrScores(index: WorkspaceIndex, encoder: RuntimeEncoder, model: string, scorer: LmScorer, points: TrainingQuery[]) {
  const out: { bytes: number; bits: number[] }[] = [];
  for (const q of points) {
    // One query at a time, so that each point's bits/byte come back on their own (evaluate.ts sums over the set).
    const report = await evaluateRetrievers({ index, retrievers: [{ name: 'base', model, encoder }], scorer, queries: [q], k: K, ensembleK: K, gamma: GAMMA });
    const top = await index.search(q.context, { k: K, mode: 'lexical', exclude: ownSource(q) });
    const scores = await scorer.score(top.map((h) => ({ doc: h.passage.text, context: q.context, continuation: q.continuation })));
    const bytes = Buffer.byteLength(q.continuation, 'utf8');
    const bm25 = scores.length ? bitsPerByte(ensembleLogProb(scores.map((s) => s.logProb), scores.map(() => 0), 1), bytes) : report.noRetrievalBitsPerByte;
    out.push({ bytes, bits: [report.noRetrievalBitsPerByte, report.retrievers[0].bitsPerByte, bm25] });
  }
  return out;
}

// ---------- reporting ----------

function printTable(rows: Row[], metrics: string[], clusters: string, lowerIsBetter = false): void {
  const groups = [...new Set(rows.map((r) => r.group)).values()].sort();
  const mean = (xs: number[]) => xs.reduce((s, x) => s + x, 0) / xs.length;
  const f = (x: number) => x.toFixed(3);
  const signed = (x: number) => (x >= 0 ? '+' : '') + x.toFixed(3);
  console.log(`${'language'.padEnd(11)} ${'queries'.padStart(7)}  ${'chunker'.padEnd(8)} ${metrics.map((m) => m.padStart(26)).join('')}`);
  for (const group of [...groups, 'all']) {
    const rs = group === 'all' ? rows : rows.filter((r) => r.group === group);
    if (rs.length === 0 || (group === 'all' && groups.length < 2)) continue;
    STRATEGIES.forEach((strategy, s) => {
      const cells = metrics.map((m) => f(mean(rs.map((r) => r.metrics[m][s]))).padStart(26));
      console.log(`${(s === 0 ? group : '').padEnd(11)} ${(s === 0 ? String(rs.length) : '').padStart(7)}  ${strategy.padEnd(8)} ${cells.join('')}`);
    });
    const cells = metrics.map((m) => {
      const d = pairedDifference(rs.map((r) => r.metrics[m][1]), rs.map((r) => r.metrics[m][0]));
      const c = clustered(rs, m);
      return `${signed(d.mean)} ±${f(d.stdErr)} ${Number.isNaN(c) ? '  (1)' : `±${f(c)}`}`.padStart(26);
    });
    console.log(`${''.padEnd(11)} ${''.padStart(7)}  ${'Δ'.padEnd(8)} ${cells.join('')}`);
  }
  console.log(
    `Δ = syntax − lines, ± its standard error over queries and over ${clusters} (queries of one are not independent; (1): all in one)` +
      (lowerIsBetter ? '; negative is better' : ''),
  );
}

/** Standard error of the mean difference when each cluster's mean difference is one observation (NaN for one cluster). */
function clustered(rows: Row[], metric: string): number {
  const byCluster = new Map<string, number[]>();
  for (const r of rows) byCluster.set(r.cluster, [...(byCluster.get(r.cluster) ?? []), r.metrics[metric][1] - r.metrics[metric][0]]);
  const means = [...byCluster.values()].map((d) => d.reduce((s, x) => s + x, 0) / d.length);
  if (means.length < 2) return NaN;
  return pairedDifference(means, means.map(() => 0)).stdErr;
}

/** Up to `n` items by a seeded shuffle (all of them when there are fewer). */
function seededSample<T>(items: readonly T[], n: number, seed: string): T[] {
  const random = seededRandom(seed);
  return items
    .map((item) => ({ item, key: random() }))
    .sort((a, b) => a.key - b.key)
    .slice(0, n)
    .map((e) => e.item);
}

/** The standard library of the `python3` on PATH, if there is one. */
function systemPythonStdlib(): string | undefined {
  try {
    const dir = execFileSync('python3', ['-c', 'import sysconfig; print(sysconfig.get_paths()["stdlib"])'], { encoding: 'utf8' }).trim();
    return existsSync(dir) ? dir : undefined;
  } catch {
    return undefined;
  }
}

function log(line: string): void {
  process.stderr.write(`${line}\n`);
}

main().catch((err) => {
  console.error(err instanceof Error ? err.stack : err);
  process.exit(1);
});
