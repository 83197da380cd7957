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

export async function readCurrentGeneration(indexDir: string): Promise<Generation | undefined> {
  let name: string;
  try {
    name = (await fs.readFile(path.join(indexDir, CURRENT), 'utf8')).trim();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  const match = GEN_PATTERN.exec(name);
  if (!match) return undefined;
  return { number: Number(match[1]), dir: path.join(indexDir, name) };
}

/**
 * Writes a new generation with `write(tmpDir)` (which must flush its files) and makes it current.
 * Older generations and leftovers of interrupted saves are removed afterwards.
 */
export async function commitGeneration(indexDir: string, write: (dir: string) => Promise<void>): Promise<Generation> {
  await fs.mkdir(indexDir, { recursive: true });
  const current = await readCurrentGeneration(indexDir);
  const number = (current?.number ?? 0) + 1;
  const name = `gen-${String(number).padStart(6, '0')}`;
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
  await removeStaleGenerations(indexDir, name);
  return { number, dir: path.join(indexDir, name) };
}

async function removeStaleGenerations(indexDir: string, keep: string): Promise<void> {
  for (const entry of await fs.readdir(indexDir)) {
    if (entry === keep) continue;
    if (GEN_PATTERN.test(entry) || entry.startsWith(TMP_PREFIX)) {
      await fs.rm(path.join(indexDir, entry), { recursive: true, force: true });
    }
  }
}
