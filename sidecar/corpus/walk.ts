import { isUtf8 } from 'node:buffer';
import type { Dirent, Stats } from 'node:fs';
import { readdir, readFile, realpath, stat } from 'node:fs/promises';
import { isAbsolute, join, posix, relative, resolve, sep } from 'node:path';
import picomatch from 'picomatch';
import { classifyContent, isLockFile } from './classify';
import { GitignoreStack } from './gitignore';

/**
 * Why a file under a root was left out of the corpus. Paths removed by `.gitignore` or the include/exclude globs are
 * not reported: they are outside the corpus by the user's choice, not skipped.
 * - `duplicate`: the same real file was already produced (overlapping roots), or a symlink points at a place inside
 *   the root, which is walked under its own path instead. Symlinks are never followed, so each file is read once
 *   under its real path and a link can neither escape the root nor loop.
 */
export type SkipReason =
  | 'binary'
  | 'not-utf8'
  | 'name-not-utf8'
  | 'too-large'
  | 'minified'
  | 'generated'
  | 'lock-file'
  | 'unreadable'
  | 'symlink-outside-root'
  | 'symlink-loop'
  | 'duplicate';

export interface WalkFile {
  kind: 'file';
  /** The root as passed in. */
  root: string;
  absPath: string;
  /** Relative to the root, '/'-separated. */
  relPath: string;
  text: string;
  size: number;
  mtimeMs: number;
}

export interface WalkSkip {
  kind: 'skip';
  root: string;
  absPath: string;
  relPath: string;
  reason: SkipReason;
  detail?: string;
}

export type WalkEntry = WalkFile | WalkSkip;

export interface WalkOptions {
  /** Globs (picomatch, matched against relPath) a file must match; empty or absent: every file. */
  include?: readonly string[];
  /** Globs for files and folders to leave out; absent: `DEFAULT_EXCLUDES`. Pass [] to exclude nothing. */
  exclude?: readonly string[];
  /**
   * Globs (matched against relPath) of files to index even when an exclude glob, the lock-file list or the minified
   * and generated checks would skip them. Folders left out by a glob are still not entered (pass such a folder as a
   * root instead); .gitignore, binary or non-UTF-8 content and the size cap still apply.
   */
  keep?: readonly string[];
  /** Files larger than this many bytes are skipped as `too-large` without being read. */
  maxFileBytes?: number;
  /** Honour `.gitignore` files and `.git/info/exclude` (default true). */
  gitignore?: boolean;
  /**
   * Absolute paths of the only files to produce (e.g. one file saved in the editor), judged by the same ignore
   * rules, globs and checks as in a full walk; only their ancestor folders are read. Paths under no root are ignored.
   */
  only?: readonly string[];
}

/**
 * Dependencies, VCS folders and metadata, build output and bundles. Matched relative to each root, so a folder inside
 * node_modules can still be indexed by passing it as a root.
 */
export const DEFAULT_EXCLUDES: readonly string[] = Object.freeze([
  '**/node_modules/**',
  '**/bower_components/**',
  '**/.git/**',
  '**/.gitignore',
  '**/.gitattributes',
  '**/.gitmodules',
  '**/.DS_Store',
  '**/.hg/**',
  '**/.svn/**',
  '**/dist/**',
  '**/build/**',
  '**/out/**',
  '**/target/**',
  '**/coverage/**',
  '**/.next/**',
  '**/.nuxt/**',
  '**/.cache/**',
  '**/.venv/**',
  '**/venv/**',
  '**/__pycache__/**',
  '**/.mypy_cache/**',
  '**/.pytest_cache/**',
  '**/.tox/**',
  '**/.gradle/**',
  '**/.idea/**',
  '**/.vscode/**',
  '**/.vscode-test/**',
  '**/.replug/**',
  '**/*.min.*',
  '**/*.map',
  '**/*.bundle.js',
]);

export const DEFAULT_MAX_FILE_BYTES = 1_000_000;

/** File reads kept in flight per folder. */
const READ_AHEAD = 16;
/**
 * Files larger than this are read only when the consumer reaches them: read-ahead hides disk latency for small
 * files, while sixteen large ones (allowed by --max-file-bytes) read ahead would hold sixteen copies' worth of memory.
 */
const READ_AHEAD_MAX_BYTES = 1_000_000;

type Matcher = (relPath: string) => boolean;

interface RootContext {
  root: string;
  absRoot: string;
  realRoot: string;
  include: Matcher | undefined;
  exclude: Matcher;
  keep: Matcher;
  maxFileBytes: number;
  /** Real paths of files already produced in this walk, across roots. */
  seen: Set<string>;
  /** With `WalkOptions.only`: the wanted files and their ancestor folders, as relPaths of this root. */
  only: { files: Set<string>; dirs: Set<string> } | undefined;
}

interface Child {
  /** Names as the OS gives them: bytes, which need not be UTF-8. */
  dirent: Dirent<Buffer>;
  /** The name decoded (invalid bytes as U+FFFD), for ordering, globs and messages. */
  name: string;
  /** Sort key: the name, plus '/' for folders, so the walk visits relPaths in plain string order. */
  key: string;
  isDir: boolean;
}

/**
 * Streams the files of each root in turn, each root's entries sorted by relPath (code-unit order, so chunk ids and
 * index order are reproducible), with one `skip` entry for each file left out and why. Each file is stat'ed before
 * it is read (size cap) and read once.
 */
export async function* walkRoots(roots: readonly string[], opts: WalkOptions = {}): AsyncGenerator<WalkEntry> {
  const seen = new Set<string>();
  const exclude = picomatch([...(opts.exclude ?? DEFAULT_EXCLUDES)], { dot: true });
  const include = opts.include?.length ? picomatch([...opts.include], { dot: true }) : undefined;
  const keep = opts.keep?.length ? picomatch([...opts.keep], { dot: true }) : () => false;
  for (const root of roots) {
    const absRoot = resolve(root);
    const realRoot = await resolveRoot(root, absRoot);
    const ctx: RootContext = {
      root,
      absRoot,
      realRoot,
      include,
      exclude,
      keep,
      maxFileBytes: opts.maxFileBytes ?? DEFAULT_MAX_FILE_BYTES,
      seen,
      only: opts.only && onlyUnder(absRoot, opts.only),
    };
    if (ctx.only?.files.size === 0) continue;
    const rules = opts.gitignore === false ? undefined : await GitignoreStack.forRoot(absRoot);
    yield* walkDir(ctx, '', rules);
  }
}

function onlyUnder(absRoot: string, paths: readonly string[]): { files: Set<string>; dirs: Set<string> } {
  const files = new Set<string>();
  const dirs = new Set<string>();
  for (const p of paths) {
    const rel = relative(absRoot, resolve(p));
    if (rel === '' || rel === '..' || rel.startsWith(`..${sep}`) || isAbsolute(rel)) continue;
    const relPosix = rel.split(sep).join('/');
    files.add(relPosix);
    for (let dir = posix.dirname(relPosix); dir !== '.'; dir = posix.dirname(dir)) dirs.add(dir);
  }
  return { files, dirs };
}

async function resolveRoot(root: string, absRoot: string): Promise<string> {
  let info: Stats;
  let real: string;
  try {
    real = await realpath(absRoot);
    info = await stat(real);
  } catch (err) {
    throw new Error(`Cannot walk root "${root}": ${(err as Error).message}. Pass an existing, readable folder.`);
  }
  if (!info.isDirectory()) {
    throw new Error(`Cannot walk root "${root}": it is not a folder. Pass the folder that contains it.`);
  }
  return real;
}

async function* walkDir(ctx: RootContext, relDir: string, rules: GitignoreStack | undefined): AsyncGenerator<WalkEntry> {
  const absDir = join(ctx.absRoot, relDir);
  let dirents: Dirent<Buffer>[];
  try {
    dirents = await readdir(absDir, { withFileTypes: true, encoding: 'buffer' });
  } catch (err) {
    yield skip(ctx, relDir, 'unreadable', errorDetail(err));
    return;
  }
  const children: Child[] = dirents.map((dirent) => {
    const isDir = dirent.isDirectory();
    const name = dirent.name.toString('utf8');
    return { dirent, name, isDir, key: isDir ? `${name}/` : name };
  });
  children.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));

  const kept: { rel: string; child: Child }[] = [];
  for (const child of children) {
    const { name } = child;
    if (name === '.git') continue;
    const rel = relDir === '' ? name : posix.join(relDir, name);
    if (ctx.only && !(child.isDir ? ctx.only.dirs : ctx.only.files).has(rel)) continue;
    if (rules?.ignores(rel, child.isDir)) continue;
    if (ctx.exclude(rel) && (child.isDir || !ctx.keep(rel))) continue;
    if (child.isDir || !ctx.include || ctx.include(rel)) kept.push({ rel, child });
  }

  // Files are read a few ahead of the consumer (results still come out in order), so disk latency overlaps; a
  // large file waits for its turn (the consumer reaching it) before it is read.
  const ahead = new Map<number, { entry: Promise<WalkEntry>; startTurn: () => void }>();
  let scheduled = 0;
  for (let i = 0; i < kept.length; i++) {
    for (; scheduled < kept.length && ahead.size < READ_AHEAD; scheduled++) {
      const { rel, child } = kept[scheduled];
      if (child.isDir || !isUtf8(child.dirent.name)) continue;
      let startTurn = () => {};
      const turn = new Promise<void>((resolve) => (startTurn = resolve));
      ahead.set(scheduled, { entry: fileEntry(ctx, rel, child, turn), startTurn });
    }
    const { rel, child } = kept[i];
    if (!isUtf8(child.dirent.name)) {
      // A JS string cannot name it (the decoded name opens another file, or none): say so rather than fail later.
      const what = child.isDir ? 'folder name is not valid UTF-8, so nothing in it is indexed' : 'file name is not valid UTF-8';
      yield skip(ctx, rel, 'name-not-utf8', `the ${what}; rename it to index it`);
    } else if (child.isDir) {
      yield* walkDir(ctx, rel, await rules?.enter(join(ctx.absRoot, rel), rel));
    } else {
      const next = ahead.get(i)!;
      ahead.delete(i);
      next.startTurn();
      yield await next.entry;
    }
  }
}

function fileEntry(ctx: RootContext, rel: string, { dirent, name }: Child, turn: Promise<void>): Promise<WalkEntry> {
  if (dirent.isSymbolicLink()) return symlinkSkip(ctx, rel);
  if (dirent.isFile()) return readEntry(ctx, rel, name, turn);
  return Promise.resolve(skip(ctx, rel, 'unreadable', 'not a regular file (socket, pipe or device)'));
}

/** Why a symlink is not followed: every link is skipped, the reason says where it leads. */
async function symlinkSkip(ctx: RootContext, rel: string): Promise<WalkSkip> {
  let target: string;
  let targetIsDir: boolean;
  try {
    target = await realpath(join(ctx.absRoot, rel));
    targetIsDir = (await stat(target)).isDirectory();
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ELOOP') return skip(ctx, rel, 'symlink-loop', 'symlink chain points back at itself');
    return skip(ctx, rel, 'unreadable', code === 'ENOENT' ? 'broken symlink' : errorDetail(err));
  }
  if (!isInside(ctx.realRoot, target)) return skip(ctx, rel, 'symlink-outside-root', `points to ${target}`);
  const linkDir = join(ctx.realRoot, posix.dirname(rel));
  if (targetIsDir && isInside(target, linkDir)) {
    return skip(ctx, rel, 'symlink-loop', `points to an enclosing folder (${relative(ctx.realRoot, target) || '.'})`);
  }
  return skip(ctx, rel, 'duplicate', `symlink to ${relative(ctx.realRoot, target)}, which is walked under its own path`);
}

async function readEntry(ctx: RootContext, rel: string, name: string, turn: Promise<void>): Promise<WalkEntry> {
  const keep = ctx.keep(rel);
  if (isLockFile(name) && !keep) return skip(ctx, rel, 'lock-file');
  const real = join(ctx.realRoot, rel);
  if (ctx.seen.has(real)) return skip(ctx, rel, 'duplicate', 'already read from an earlier, overlapping root');
  ctx.seen.add(real);
  const absPath = join(ctx.absRoot, rel);
  let info: Stats;
  let bytes: Buffer;
  try {
    info = await stat(absPath);
    if (info.size > ctx.maxFileBytes) {
      return skip(ctx, rel, 'too-large', `${info.size} bytes (limit ${ctx.maxFileBytes})`);
    }
    if (info.size > READ_AHEAD_MAX_BYTES) await turn;
    bytes = await readFile(absPath);
  } catch (err) {
    return skip(ctx, rel, 'unreadable', errorDetail(err));
  }
  const verdict = classifyContent(bytes, name, { keep });
  if (verdict.reason) return skip(ctx, rel, verdict.reason, verdict.detail);
  const { size, mtimeMs } = info;
  return { kind: 'file', root: ctx.root, absPath, relPath: rel, text: verdict.text, size, mtimeMs };
}

function skip(ctx: RootContext, rel: string, reason: SkipReason, detail?: string): WalkSkip {
  const entry: WalkSkip = { kind: 'skip', root: ctx.root, absPath: join(ctx.absRoot, rel), relPath: rel, reason };
  if (detail !== undefined) entry.detail = detail;
  return entry;
}

function isInside(folder: string, path: string): boolean {
  return path === folder || path.startsWith(folder.endsWith(sep) ? folder : folder + sep);
}

function errorDetail(err: unknown): string {
  return (err as NodeJS.ErrnoException).code ?? (err as Error).message;
}

/** Counts skipped files by reason for the CLI's summary line; printing it is the caller's job. */
export class SkipSummary {
  private readonly counts = new Map<SkipReason, number>();
  private count = 0;

  add(entry: WalkEntry): void {
    if (entry.kind !== 'skip') return;
    this.counts.set(entry.reason, (this.counts.get(entry.reason) ?? 0) + 1);
    this.count += 1;
  }

  get total(): number {
    return this.count;
  }

  /** Reasons with their counts, most frequent first (ties by name, for stable output). */
  byReason(): [SkipReason, number][] {
    return [...this.counts].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1));
  }
}

export function summarizeSkips(entries: Iterable<WalkEntry>): SkipSummary {
  const summary = new SkipSummary();
  for (const entry of entries) summary.add(entry);
  return summary;
}
