import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { fsyncFile, writeFileDurable } from './atomic-file';
import { DenseIndex } from './dense-index';
import { commitGeneration, readCurrentGeneration, type Generation } from './generations';
import { PassageTable, type StoredState } from './index-state';
import { LexicalIndex } from './lexical-index';
import { INDEX_FORMAT_VERSION, type IndexManifest } from './manifest';

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

/** Writes all parts as a new generation and makes it current (see generations.ts for the atomicity argument). */
export async function saveGeneration(indexDir: string, contents: IndexContents): Promise<void> {
  const state = JSON.stringify(contents.table.toStored());
  const lexical = contents.lexical.serialize();
  await commitGeneration(indexDir, async (dir) => {
    await writeFileDurable(path.join(dir, PASSAGES), state);
    await writeFileDurable(path.join(dir, LEXICAL), lexical);
    if (contents.dense) {
      await contents.dense.save(path.join(dir, DENSE));
      await fsyncFile(path.join(dir, DENSE));
    }
    // The manifest is written last: a generation folder without one is incomplete by construction.
    await writeFileDurable(path.join(dir, MANIFEST), JSON.stringify(contents.manifest, null, 2));
  });
}

export async function readStoredManifest(indexDir: string): Promise<IndexManifest | undefined> {
  const generation = await readCurrentGeneration(indexDir);
  if (!generation) return undefined;
  return JSON.parse(await fs.readFile(path.join(generation.dir, MANIFEST), 'utf8')) as IndexManifest;
}

export interface LoadedGeneration {
  table: PassageTable;
  lexical: LexicalIndex;
  dense?: DenseIndex;
  manifest?: IndexManifest;
  problem?: string;
}

/** The current generation, or an empty index with the reason when there is none or it cannot be read. */
export async function loadGeneration(dir: string): Promise<LoadedGeneration> {
  for (let attempt = 0; ; attempt++) {
    const generation = await readCurrentGeneration(dir);
    const loaded = await loadGenerationOnce(generation);
    // A writer may have replaced (and removed) the generation while it was being read: read the new one.
    const after = await readCurrentGeneration(dir);
    if (!loaded.problem || after?.number === generation?.number || attempt === 2) return loaded;
  }
}

async function loadGenerationOnce(generation: Generation | undefined): Promise<LoadedGeneration> {
  const empty = (problem?: string): LoadedGeneration => ({ table: new PassageTable(), lexical: LexicalIndex.create(), problem });
  if (!generation) return empty();
  try {
    const manifest = JSON.parse(await fs.readFile(path.join(generation.dir, MANIFEST), 'utf8')) as IndexManifest;
    if (manifest.formatVersion !== INDEX_FORMAT_VERSION) return { ...empty(`index format ${manifest.formatVersion} is outdated`) };
    const state = JSON.parse(await fs.readFile(path.join(generation.dir, PASSAGES), 'utf8')) as StoredState;
    const table = PassageTable.fromStored(state);
    const lexical = LexicalIndex.load(await fs.readFile(path.join(generation.dir, LEXICAL)));
    const dense = manifest.encoder
      ? await DenseIndex.load(path.join(generation.dir, DENSE), manifest.encoder.dim, table.byLabel.size)
      : undefined;
    return { table, lexical, dense, manifest };
  } catch (err) {
    // Generations are written atomically, so this means outside damage: rebuild rather than crash.
    return empty(`the stored index could not be read (${(err as Error).message})`);
  }
}

