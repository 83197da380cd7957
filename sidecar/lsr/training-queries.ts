import { createHash } from 'node:crypto';
import * as path from 'node:path';
import { splitLines } from '../corpus/chunk';
import type { TokenCounter } from '../corpus/passage';

/**
 * A training (or evaluation) query of REPLUG LSR: x = the code before a point, y = the code after it.
 * Cut at line boundaries, because code completion continues from the end of a line and whole lines are what
 * RepoEval-style line completion scores.
 */
export interface TrainingQuery {
  id: string;
  /** The file (or CSV) the query was cut from; its passages are never retrieved for it. */
  path: string;
  /** For CSV queries: the row id. */
  docId?: string;
  context: string;
  continuation: string;
  /** 1-based inclusive line range of the continuation inside `path`. */
  continuationStart: number;
  continuationEnd: number;
}

export interface QueryCut {
  /** Token budget of x (REPLUG: 128). */
  contextTokens: number;
  /** Token budget of y (REPLUG: 128). */
  continuationTokens: number;
  countTokens: TokenCounter;
}

/**
 * Cuts x and y around unit `split` (0-based: y starts there): x takes whole units (lines, or words of a one-line
 * text) backwards and y whole units forwards while they fit their budgets. Undefined when either side is blank.
 */
export function cutAt(
  units: readonly string[],
  split: number,
  cut: QueryCut,
  joiner = '\n',
): { context: string; continuation: string; end: number } | undefined {
  const cost = (u: string) => cut.countTokens(u) + (joiner === '\n' ? 1 : 0);
  let start = split;
  let budget = cut.contextTokens;
  while (start > 0 && cost(units[start - 1]) <= budget) budget -= cost(units[--start]);
  let end = split;
  budget = cut.continuationTokens;
  while (end < units.length && cost(units[end]) <= budget) budget -= cost(units[end++]);
  const context = units.slice(start, split).join(joiner);
  const continuation = units.slice(split, end).join(joiner);
  if (context.trim() === '' || continuation.trim() === '') return undefined;
  return { context: joiner === '\n' ? `${context}\n` : context, continuation, end };
}

/**
 * The seed's CSV queries: x is the start of each row's text up to its budget (at most half the text), y follows.
 * Multi-line rows are cut between lines; a one-line row (prose) between words.
 */
export function queriesFromRows(rows: readonly { id: string; text: string }[], file: string, cut: QueryCut): TrainingQuery[] {
  const queries: TrainingQuery[] = [];
  for (const row of rows) {
    const lines = splitLines(row.text);
    const byLines = lines.length > 1;
    const units = byLines ? lines : row.text.split(/(?<=\s)/);
    let split = 0;
    let budget = cut.contextTokens;
    while (split < Math.ceil(units.length / 2) && cut.countTokens(units[split]) <= budget) budget -= cut.countTokens(units[split++]);
    const q = cutAt(units, Math.max(1, split), cut, byLines ? '\n' : '');
    if (!q) continue;
    queries.push({
      id: row.id,
      path: file,
      docId: row.id,
      context: q.context,
      continuation: q.continuation,
      // One-line rows: the whole row is line 1.
      continuationStart: byLines ? Math.max(1, split) + 1 : 1,
      continuationEnd: byLines ? q.end : 1,
    });
  }
  return queries;
}

/**
 * Points sampled in workspace files: `perFile` split lines per file, spread evenly with a seeded jitter so runs are
 * reproducible. Lines that are blank, or whose next line is blank, make poor split points and are passed over.
 */
export function queriesFromFiles(
  files: readonly { path: string; text: string }[],
  perFile: number,
  seed: number,
  cut: QueryCut,
  base?: string,
): TrainingQuery[] {
  const queries: TrainingQuery[] = [];
  for (const file of files) {
    const lines = splitLines(file.text);
    if (lines.length < 4) continue;
    const rand = seededRandom(`${seed}:${stableKey(file.path, base)}`);
    const span = lines.length / perFile;
    for (let i = 0; i < perFile; i++) {
      const split = Math.min(lines.length - 1, Math.max(1, Math.floor(span * i + rand() * span)));
      if (lines[split].trim() === '') continue;
      const q = cutAt(lines, split, cut);
      if (!q) continue;
      queries.push({
        id: `${file.path}:${split + 1}`,
        path: file.path,
        context: q.context,
        continuation: q.continuation,
        continuationStart: split + 1,
        continuationEnd: q.end,
      });
    }
  }
  return queries;
}

/**
 * Deterministic split of files into query files for training, for evaluation, and the rest, by a seeded hash of the
 * path (stable when files are added or removed, unlike a shuffled list).
 */
export function splitFiles(
  paths: readonly string[],
  fractions: { train: number; eval: number },
  seed: number,
  base?: string,
): { train: string[]; eval: string[] } {
  const train: string[] = [];
  const evalFiles: string[] = [];
  for (const p of paths) {
    const u = seededRandom(`split:${seed}:${stableKey(p, base)}`)();
    if (u < fractions.train) train.push(p);
    else if (u < fractions.train + fractions.eval) evalFiles.push(p);
  }
  return { train, eval: evalFiles };
}

/**
 * What seeded sampling hashes for a file: its path below `base` (the workspace's common folder) with '/' separators,
 * so the same workspace gets the same split and points wherever it is checked out.
 */
function stableKey(file: string, base: string | undefined): string {
  return base === undefined ? file : path.relative(base, file).split(path.sep).join('/');
}

/** The deepest folder that holds every one of `files` (absolute paths). */
export function commonFolder(files: readonly string[]): string {
  if (files.length === 0) return path.parse(process.cwd()).root;
  let folder = path.dirname(files[0]);
  const outside = (f: string) => {
    const rel = path.relative(folder, f);
    return rel === '..' || rel.startsWith(`..${path.sep}`);
  };
  for (const f of files) while (outside(f)) folder = path.dirname(folder);
  return folder;
}

/** A small seeded PRNG (mulberry32 over a sha256 seed): reproducible sampling without a dependency. */
export function seededRandom(seed: string): () => number {
  let a = createHash('sha256').update(seed).digest().readUInt32LE(0);
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
