/**
 * Does a code-first prior help lexical search? A labelled set built from the packages in node_modules, each indexed
 * as its own workspace (README, changelog, package.json and code together, as a user's repository would be):
 *   - identifier queries: the name of a function or class defined once in the package's code; gold = the passages
 *     of that file whose lines hold the definition (the case the issue names: docs mentioning a name outrank it);
 *   - summary queries: the first sentence of the JSDoc comment right above such a definition (a question in words
 *     about code); gold as above;
 *   - heading queries: a README section heading of two or more words; gold = the README passages holding it (what
 *     a prior against docs costs).
 * Each ranking re-scores BM25's top 100 with score × α for passages outside code files, on every query ("all") or
 * only on code-like ones ("code": one token with a camelCase hump, `_`, `$`, a dot or a call), and reports nDCG@10
 * and MRR with the paired difference against today's ranking and two standard errors: over queries, and over
 * packages (queries of one package are not independent). The variant is chosen on the packages of one half (by
 * name hash) and reported on the other.
 *   node --import tsx scripts/eval-code-first.ts [--packages N] [--per-package 8] [--seed 1]
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { ndcgAt, pairedDifference, reciprocalRank } from '../sidecar/eval/ranking-metrics';
import { WorkspaceIndex, type SearchHit } from '../sidecar/index/workspace-index';

const ALPHAS = [0.9, 0.8, 0.6, 0.4, 0.2, 0];
/** Today's ranking first, then the prior on every query, then only on code-like queries. */
const VARIANTS = [
  { label: 'none', alpha: 1, gated: false },
  ...ALPHAS.map((alpha) => ({ label: `all   α ${alpha.toFixed(1)}`, alpha, gated: false })),
  ...ALPHAS.map((alpha) => ({ label: `code  α ${alpha.toFixed(1)}`, alpha, gated: true })),
];
const K = 10;
const POOL = 100;
const CODE = /\.(?:[cm]?[jt]sx?)$/i;
const DEFINITION = [
  /^\s*(?:export\s+(?:default\s+)?)?(?:async\s+)?function\s*\*?\s*([A-Za-z_$][\w$]*)\s*\(/,
  /^\s*(?:export\s+(?:default\s+)?)?(?:abstract\s+)?class\s+([A-Za-z_$][\w$]*)/,
  /^\s*(?:export\s+)?(?:const|let|var)\s+([A-Za-z_$][\w$]*)\s*=\s*(?:async\s+)?(?:function\b|\([^)]*\)\s*=>|[A-Za-z_$][\w$]*\s*=>)/,
  /^\s*(?:module\.)?exports\.([A-Za-z_$][\w$]*)\s*=\s*(?:async\s+)?function\b/,
];
const HEADING = /^#{1,4}\s+(.+?)\s*#*\s*$/;

type Kind = 'code' | 'other';
const QUERY_TYPES = ['identifier', 'summary', 'heading'] as const;
type QueryType = (typeof QUERY_TYPES)[number];
interface Query {
  pkg: string;
  type: QueryType;
  text: string;
  gold: Set<string>;
}

/** Code is any source file; README, changelog, licence, package.json and other data or prose are "other". */
function kindOf(file: string): Kind {
  return CODE.test(file) ? 'code' : 'other';
}

function packageDirs(modules: string): string[] {
  const dirs: string[] = [];
  for (const name of readdirSync(modules).sort()) {
    if (name.startsWith('.')) continue;
    if (name.startsWith('@')) for (const sub of readdirSync(path.join(modules, name)).sort()) dirs.push(path.join(modules, name, sub));
    else dirs.push(path.join(modules, name));
  }
  return dirs.filter((dir) => existsSync(path.join(dir, 'package.json')) && readdirSync(dir).some((f) => /^readme(\.md)?$/i.test(f)));
}

function seeded(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) / 2 ** 32;
  };
}

function sample<T>(items: T[], n: number, random: () => number): T[] {
  const copy = [...items];
  for (let i = copy.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [copy[i], copy[j]] = [copy[j], copy[i]];
  }
  return copy.slice(0, n);
}

/** Queries of one indexed package, or none when it lacks either kind. */
function queriesOf(pkg: string, index: WorkspaceIndex, perPackage: number, random: () => number): Query[] {
  const passages = index.passages();
  const byFile = new Map<string, typeof passages>();
  for (const p of passages) byFile.set(p.path, [...(byFile.get(p.path) ?? []), p]);
  const holding = (file: string, line: number) => new Set((byFile.get(file) ?? []).filter((p) => p.startLine <= line && line <= p.endLine).map((p) => p.id));

  const definitions = new Map<string, { file: string; line: number; summary?: string }[]>();
  for (const file of byFile.keys()) {
    if (kindOf(file) !== 'code' || /\.d\.[cm]?ts$/i.test(file)) continue;
    const lines = readFileSync(file, 'utf8').split('\n');
    lines.forEach((text, i) => {
      for (const pattern of DEFINITION) {
        const name = pattern.exec(text)?.[1];
        if (name && name.length >= 4) definitions.set(name, [...(definitions.get(name) ?? []), { file, line: i + 1, summary: jsdocSummary(lines, i) }]);
      }
    });
  }
  const unambiguous = [...definitions].filter(([, places]) => places.length === 1).map(([name, [place]]) => ({ name, ...place }));
  const identifiers: Query[] = unambiguous.map((d) => ({ pkg, type: 'identifier' as const, text: d.name, gold: holding(d.file, d.line) }));
  const summaries: Query[] = unambiguous
    .filter((d) => d.summary !== undefined)
    .map((d) => ({ pkg, type: 'summary' as const, text: d.summary!, gold: holding(d.file, d.line) }));

  const headings: Query[] = [];
  for (const file of byFile.keys()) {
    if (!/^readme(\.md)?$/i.test(path.basename(file))) continue;
    readFileSync(file, 'utf8').split('\n').forEach((text, i) => {
      const heading = HEADING.exec(text)?.[1].replace(/[`*_[\]()]/g, '').trim();
      if (heading && heading.split(/\s+/).length >= 2) headings.push({ pkg, type: 'heading', text: heading, gold: holding(file, i + 1) });
    });
  }
  const unique = (qs: Query[]) => qs.filter((q, i) => q.gold.size > 0 && qs.findIndex((o) => o.text === q.text) === i);
  return [
    ...sample(unique(identifiers), perPackage, random),
    ...sample(unique(summaries), Math.ceil(perPackage / 2), random),
    ...sample(unique(headings), Math.ceil(perPackage / 2), random),
  ];
}

/** The first sentence (three or more words) of a JSDoc block ending on the line above `at`. */
function jsdocSummary(lines: string[], at: number): string | undefined {
  if (!/\*\/\s*$/.test(lines[at - 1] ?? '')) return undefined;
  let start = at - 1;
  while (start > 0 && !/^\s*\/\*\*/.test(lines[start])) start--;
  const body = lines
    .slice(start, at)
    .map((l) => l.replace(/^\s*\/?\*+\/?\s?/, '').replace(/\*\/\s*$/, '').trim())
    .filter((l) => l && !l.startsWith('@'))
    .join(' ');
  const sentence = /^(.+?[.!?])(?:\s|$)/.exec(body)?.[1] ?? body;
  const words = sentence.replace(/[{}`*]/g, '').trim();
  return words.split(/\s+/).length >= 3 ? words : undefined;
}

/** One token with a mark of code in it: a camelCase hump, `_`, `$`, a dot, a call or a scope operator. */
function isCodeLike(query: string): boolean {
  const q = query.trim();
  return q.length <= 64 && !/\s/.test(q) && /[a-z][A-Z]|_|\$|\.|\(|::|->/.test(q);
}

function rerank(hits: SearchHit[], alpha: number): string[] {
  return hits
    .map((hit, rank) => ({ id: hit.passage.id, rank, score: hit.score * (kindOf(hit.passage.path) === 'code' ? 1 : alpha) }))
    .sort((a, b) => b.score - a.score || a.rank - b.rank)
    .map((h) => h.id);
}

interface Scored {
  query: Query;
  ndcg: number[];
  rr: number[];
}

/** Mean difference and its standard error over packages: each package's mean difference is one observation. */
function clusteredDifference(rows: Scored[], metric: 'ndcg' | 'rr', a: number): { mean: number; stdErr: number } {
  const byPkg = new Map<string, number[]>();
  for (const r of rows) byPkg.set(r.query.pkg, [...(byPkg.get(r.query.pkg) ?? []), r[metric][a] - r[metric][0]]);
  const means = [...byPkg.values()].map((d) => d.reduce((s, x) => s + x, 0) / d.length);
  return pairedDifference(means, means.map(() => 0));
}

function report(label: string, rows: Scored[]): void {
  if (rows.length === 0) return;
  const packages = new Set(rows.map((r) => r.query.pkg)).size;
  const codeLike = rows.filter((r) => isCodeLike(r.query.text)).length;
  console.log(`\n${label}: ${rows.length} queries (${codeLike} code-like) from ${packages} packages`);
  console.log('prior          nDCG@10     MRR   ΔnDCG ± se(query) ± se(package)     ΔMRR ± se(query) ± se(package)');
  const mean = (xs: number[]) => xs.reduce((s, x) => s + x, 0) / xs.length;
  VARIANTS.forEach(({ label: name }, a) => {
    const ndcg = rows.map((r) => r.ndcg[a]);
    const rr = rows.map((r) => r.rr[a]);
    const dn = pairedDifference(ndcg, rows.map((r) => r.ndcg[0]));
    const dr = pairedDifference(rr, rows.map((r) => r.rr[0]));
    const cn = clusteredDifference(rows, 'ndcg', a);
    const cr = clusteredDifference(rows, 'rr', a);
    const f = (x: number) => (x >= 0 ? '+' : '') + x.toFixed(3);
    console.log(
      `${name.padEnd(13)}  ${mean(ndcg).toFixed(3)}   ${mean(rr).toFixed(3)}   ${f(dn.mean)} ± ${dn.stdErr.toFixed(3)} ± ${cn.stdErr.toFixed(3)}` +
        `   ${f(dr.mean)} ± ${dr.stdErr.toFixed(3)} ± ${cr.stdErr.toFixed(3)}`,
    );
  });
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: { packages: { type: 'string', default: '400' }, 'per-package': { type: 'string', default: '8' }, seed: { type: 'string', default: '1' } },
  });
  const random = seeded(Number(values.seed));
  const modules = path.resolve(__dirname, '..', 'node_modules');
  const scored: Scored[] = [];
  for (const dir of packageDirs(modules).slice(0, Number(values.packages))) {
    const pkg = path.relative(modules, dir);
    const indexDir = mkdtempSync(path.join(tmpdir(), 'replug-code-first-'));
    try {
      const index = await WorkspaceIndex.open(indexDir);
      const report = await index.update([dir]);
      if (report.files < 3 || report.passages > 20_000) {
        await index.close();
        continue;
      }
      for (const query of queriesOf(pkg, index, Number(values['per-package']), random)) {
        const hits = await index.search(query.text, { k: POOL, mode: 'lexical' });
        const rankings = VARIANTS.map(({ alpha, gated }) => rerank(hits, gated && !isCodeLike(query.text) ? 1 : alpha));
        scored.push({ query, ndcg: rankings.map((r) => ndcgAt(r, query.gold, K)), rr: rankings.map((r) => reciprocalRank(r.slice(0, K), query.gold)) });
      }
      await index.close();
    } finally {
      rmSync(indexDir, { recursive: true, force: true });
    }
  }
  const dev = (pkg: string) => createHash('sha256').update(pkg).digest()[0] % 2 === 0;
  for (const type of QUERY_TYPES) report(`${type} queries, all packages`, scored.filter((r) => r.query.type === type));
  // α chosen on the dev half by mean nDCG over all query types, then reported on the test half.
  const devRows = scored.filter((r) => dev(r.query.pkg));
  const best = VARIANTS.map((_, a) => devRows.reduce((s, r) => s + r.ndcg[a], 0)).reduce((bi, v, i, all) => (v > all[bi] ? i : bi), 0);
  console.log(`\nprior chosen on the dev half (${devRows.length} queries, all types): ${VARIANTS[best].label}`);
  for (const type of QUERY_TYPES) report(`${type} queries, test half`, scored.filter((r) => !dev(r.query.pkg) && r.query.type === type));
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
