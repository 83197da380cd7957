import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { fsyncDir, writeFileAtomic } from './atomic-file';

/**
 * An index directory holds immutable generations (`gen-000042/`) and a `CURRENT` file naming the live one.
 * A save writes a complete new generation in a temp folder, renames it into place, then swaps `CURRENT`
 * atomically; a crash at any point leaves the previous generation live, so readers never see a half-written index.
 */
const CURRENT = 'CURRENT';
const GEN_PATTERN = /^gen-(\d{6,})$/;
const TMP_PREFIX = '.tmp-gen-';

export interface Generation {
  number: number;
  dir: string;
}

/** What `CURRENT` says: nothing (no generation saved yet), a generation, or 'damaged' when it names none. */
export async function readCurrentPointer(indexDir: string): Promise<Generation | 'damaged' | undefined> {
  let name: string;
  try {
    name = (await fs.readFile(path.join(indexDir, CURRENT), 'utf8')).trim();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  const match = GEN_PATTERN.exec(name);
  if (!match) return 'damaged';
  return { number: Number(match[1]), dir: path.join(indexDir, name) };
}

/** The live generation; a garbled `CURRENT` reads as none (it is never followed outside the directory). */
export async function readCurrentGeneration(indexDir: string): Promise<Generation | undefined> {
  const pointer = await readCurrentPointer(indexDir);
  return pointer === 'damaged' ? undefined : pointer;
}

/** Generation folders in `indexDir` numbered below `below` (all when absent), newest first. */
export async function olderGenerations(indexDir: string, below = Infinity): Promise<Generation[]> {
  const entries = await fs.readdir(indexDir).catch(() => [] as string[]);
  return entries
    .flatMap((name) => {
      const match = GEN_PATTERN.exec(name);
      return match && Number(match[1]) < below ? [{ number: Number(match[1]), dir: path.join(indexDir, name) }] : [];
    })
    .sort((a, b) => b.number - a.number);
}

export interface CommitOptions {
  /**
   * A generation to keep beside the new one (the one its contents were derived from), so that a reader finding
   * the new one damaged later can fall back to it. Without it every older generation is removed.
   */
  keep?: number;
}

/**
 * Writes a new generation with `write(tmpDir)` (which must flush its files) and makes it current.
 * Older generations (but `opts.keep`) and leftovers of interrupted saves are removed afterwards.
 */
export async function commitGeneration(
  indexDir: string,
  write: (dir: string) => Promise<void>,
  opts: CommitOptions = {},
): Promise<Generation> {
  await fs.mkdir(indexDir, { recursive: true });
  // After a garbled CURRENT, number past every folder so no surviving generation is overwritten.
  const newest = (await readCurrentGeneration(indexDir))?.number ?? (await olderGenerations(indexDir))[0]?.number ?? 0;
  const number = newest + 1;
  const name = generationName(number);
  const tmp = path.join(indexDir, `${TMP_PREFIX}${number}-${process.pid}`);
  await fs.rm(tmp, { recursive: true, force: true });
  await fs.mkdir(tmp);
  try {
    await write(tmp);
    await fsyncDir(tmp);
    const finalDir = path.join(indexDir, name);
    // A crashed save may have left a generation of this number that CURRENT never named.
    await fs.rm(finalDir, { recursive: true, force: true });
    await fs.rename(tmp, finalDir);
    await fsyncDir(indexDir);
  } catch (err) {
    await fs.rm(tmp, { recursive: true, force: true });
    throw err;
  }
  await writeFileAtomic(path.join(indexDir, CURRENT), `${name}\n`);
  const keep = new Set([name]);
  if (opts.keep !== undefined) keep.add(generationName(opts.keep));
  await removeStaleGenerations(indexDir, keep);
  return { number, dir: path.join(indexDir, name) };
}

export function generationName(number: number): string {
  return `gen-${String(number).padStart(6, '0')}`;
}

async function removeStaleGenerations(indexDir: string, keep: Set<string>): Promise<void> {
  for (const entry of await fs.readdir(indexDir)) {
    if (keep.has(entry)) continue;
    if (GEN_PATTERN.test(entry) || entry.startsWith(TMP_PREFIX)) {
      await fs.rm(path.join(indexDir, entry), { recursive: true, force: true });
    }
  }
}
