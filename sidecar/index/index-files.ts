import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { fsyncFile, writeFileDurable } from './atomic-file';
import { DenseIndex } from './dense-index';
import {
  fileChecksum,
  openManifest,
  readVerified,
  sealManifest,
  UnusableGeneration,
  verifyFile,
  writeChecksummed,
  type PartChecksums,
} from './generation-integrity';
import { commitGeneration, olderGenerations, readCurrentPointer, type Generation } from './generations';
import { PassageTable, type StoredState } from './index-state';
import { LexicalIndex } from './lexical-index';
import type { IndexManifest } from './manifest';

/** The files of one generation of an index directory. */
const MANIFEST = 'manifest.json';
const PASSAGES = 'passages.json';
const LEXICAL = 'lexical.bin';
const DENSE = 'dense.hnsw';

export interface IndexContents {
  manifest: IndexManifest;
  table: PassageTable;
  lexical: LexicalIndex;
  dense?: DenseIndex;
}

/**
 * Writes all parts as a new generation and makes it current (see generations.ts for the atomicity argument).
 * `keep` names the generation the contents were loaded from: it stays as the fallback should the new one be damaged.
 */
export async function saveGeneration(indexDir: string, contents: IndexContents, keep?: number): Promise<Generation> {
  return commitGeneration(
    indexDir,
    async (dir) => {
      const parts: PartChecksums = {
        [PASSAGES]: await writeChecksummed(path.join(dir, PASSAGES), contents.table.toJsonChunks()),
        [LEXICAL]: await writeChecksummed(path.join(dir, LEXICAL), contents.lexical.serializeParts()),
      };
      if (contents.dense) {
        await contents.dense.save(path.join(dir, DENSE));
        await fsyncFile(path.join(dir, DENSE));
        parts[DENSE] = await fileChecksum(path.join(dir, DENSE));
      }
      // The manifest is written last: a generation folder without one is incomplete by construction.
      await writeFileDurable(path.join(dir, MANIFEST), sealManifest(contents.manifest, parts));
    },
    { keep },
  );
}

/** A generation that was passed over, and why. */
export interface SkippedGeneration {
  name: string;
  why: string;
}

export interface LoadedGeneration {
  table: PassageTable;
  lexical: LexicalIndex;
  dense?: DenseIndex;
  manifest?: IndexManifest;
  /** The generation the contents come from; undefined for an empty index. */
  generation?: Generation;
  /** Newer generations passed over because they are damaged, newest first (empty when the live one was read). */
  damaged: SkippedGeneration[];
  /** Why nothing stored could be used although an index exists (all of it damaged, or an outdated format). */
  problem?: string;
}

/** The manifest of the generation `loadGeneration` would read; throws `IndexDamagedError` when there is none intact. */
export async function readStoredManifest(indexDir: string): Promise<IndexManifest | undefined> {
  const found = await findUsable(indexDir, verifyGeneration);
  if (found.problem) throw new IndexDamagedError(indexDir, found.problem, found.model);
  return found.value;
}

/**
 * The newest intact generation: the live one, or when that is damaged the newest intact older one (with the damage
 * listed), or an empty index with the reason when nothing stored can be used.
 */
export async function loadGeneration(dir: string): Promise<LoadedGeneration> {
  const found = await findUsable(dir, readGeneration);
  const empty = { table: new PassageTable(), lexical: LexicalIndex.create() };
  return { ...empty, ...found.value, generation: found.generation, damaged: found.damaged, problem: found.problem };
}

/** Stored index that cannot be used; the message says what is wrong and how to recover. */
export class IndexDamagedError extends Error {
  override readonly name = 'IndexDamagedError';
  constructor(
    indexDir: string,
    readonly problem: string,
    /** The encoder the unusable index was built with, when its manifest says: a rebuild can use it again. */
    readonly model?: string,
  ) {
    super(`the index at ${indexDir} cannot be used: ${problem}. Rebuild it: run \`replug-code index <folders> --index-dir ${indexDir}\` (in VS Code: REPLUG: Rebuild Index).`);
  }
}

/** One line for the user: which generations were damaged and which one is used instead. */
export function describeFallback(loaded: Pick<LoadedGeneration, 'damaged' | 'generation' | 'manifest'>): string | undefined {
  if (loaded.damaged.length === 0 || !loaded.generation) return undefined;
  const used = path.basename(loaded.generation.dir);
  return `${describeSkipped(loaded.damaged)}; using the previous generation ${used} (saved ${loaded.manifest?.updatedAt ?? 'earlier'}): run index again to bring it up to date`;
}

function describeSkipped(skipped: SkippedGeneration[]): string {
  return skipped.map((s) => `index generation ${s.name} is damaged (${s.why})`).join('; ');
}

interface Found<T> {
  value?: T;
  generation?: Generation;
  damaged: SkippedGeneration[];
  problem?: string;
  /** With a problem: the encoder the newest readable manifest records. */
  model?: string;
}

/** Tries the live generation, then older ones newest first, with `read`; `UnusableGeneration` moves to the next. */
async function findUsable<T>(dir: string, read: (generation: Generation) => Promise<T>): Promise<Found<T>> {
  for (let attempt = 0; ; attempt++) {
    const pointer = await readCurrentPointer(dir);
    if (pointer === undefined) return { damaged: [] };
    const damaged: SkippedGeneration[] = [];
    let candidates: Generation[];
    if (pointer === 'damaged') {
      damaged.push({ name: 'CURRENT', why: 'it names no generation' });
      candidates = await olderGenerations(dir);
    } else {
      candidates = [pointer, ...(await olderGenerations(dir, pointer.number))];
    }
    let outdated: string | undefined;
    let model: string | undefined;
    for (const generation of candidates) {
      try {
        return { value: await read(generation), generation, damaged };
      } catch (err) {
        const why = err instanceof UnusableGeneration ? err.message : `${(err as Error).message}`;
        if (err instanceof UnusableGeneration) model ??= err.encoderModel;
        if (err instanceof UnusableGeneration && err.outdated) {
          // An outdated generation is not damage, and nothing older can be newer in format: stop here.
          outdated = why;
          break;
        }
        damaged.push({ name: path.basename(generation.dir), why });
      }
    }
    // A writer may have replaced (and removed) the generations while they were read: read the new ones.
    if (pointerKey(await readCurrentPointer(dir)) !== pointerKey(pointer) && attempt < 2) continue;
    const problems = [...(damaged.length ? [describeSkipped(damaged)] : []), ...(outdated ? [outdated] : [])];
    const intactLeft = outdated ? '' : ' and no intact earlier generation is left';
    return { damaged, problem: `${problems.join('; ')}${intactLeft}`, model };
  }
}

function pointerKey(pointer: Generation | 'damaged' | undefined): string {
  return typeof pointer === 'object' ? pointer.dir : String(pointer);
}

async function openGenerationManifest(generation: Generation): Promise<{ manifest: IndexManifest; parts: PartChecksums }> {
  const text = await fs.readFile(path.join(generation.dir, MANIFEST), 'utf8').catch((err: NodeJS.ErrnoException) => {
    throw new UnusableGeneration(`${MANIFEST} cannot be read (${err.code ?? err.message})`);
  });
  return openManifest(text);
}

/** Runs `work` on the parts of a generation whose manifest records `model`; a failure keeps that record. */
async function withParts<T>(model: string | undefined, work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (err) {
    throw new UnusableGeneration((err as Error).message, false, model);
  }
}

/** Checks every part of a generation against its manifest, streaming them, and returns the manifest. */
async function verifyGeneration(generation: Generation): Promise<IndexManifest> {
  const { manifest, parts } = await openGenerationManifest(generation);
  return withParts(manifest.encoder?.model, async () => {
    for (const part of manifest.encoder ? [PASSAGES, LEXICAL, DENSE] : [PASSAGES, LEXICAL]) await verifyFile(generation.dir, part, parts);
    return manifest;
  });
}

async function readGeneration(generation: Generation): Promise<Omit<LoadedGeneration, 'damaged'>> {
  const { manifest, parts } = await openGenerationManifest(generation);
  // Each part is verified before a byte of it is parsed: hnswlib's reader trusts its input.
  return withParts(manifest.encoder?.model, async () => {
    const table = PassageTable.fromStored(JSON.parse((await readVerified(generation.dir, PASSAGES, parts)).toString('utf8')) as StoredState);
    const lexical = LexicalIndex.load(await readVerified(generation.dir, LEXICAL, parts));
    if (lexical.size !== table.byId.size) {
      throw new Error(`${LEXICAL} holds ${lexical.size} passages, ${PASSAGES} ${table.byId.size}`);
    }
    if (!manifest.encoder) return { table, lexical, manifest };
    await verifyFile(generation.dir, DENSE, parts);
    const dense = await DenseIndex.load(path.join(generation.dir, DENSE), manifest.encoder.dim, table.byLabel.size);
    return { table, lexical, dense, manifest };
  });
}
