import * as path from 'node:path';
import type { ShardSpec } from '../corpus/shard';
import { DenseIndex } from './dense-index';
import { loadGeneration, readStoredManifest, saveGeneration } from './index-files';
import { IndexLock } from './index-lock';
import { PassageTable, type FileRecord, type StoredPassage } from './index-state';
import { LexicalIndex } from './lexical-index';
import { denseMismatch, INDEX_FORMAT_VERSION, type IndexManifest } from './manifest';

export interface MergeReport {
  shards: number;
  files: number;
  passages: number;
  dense: boolean;
}

interface LoadedShard {
  dir: string;
  shard: ShardSpec;
  manifest: IndexManifest;
  table: PassageTable;
  dense?: DenseIndex;
}

/**
 * Merges the shard indexes of a corpus (`index --shard-id I --num-shards N`, possibly built on other machines) into
 * `outDir`, exactly as one build of the whole corpus would have made it: passages in file order, so their labels,
 * BM25 document numbers and HNSW insertion order — and hence every search result — are those of the single build.
 * Vectors are copied, never re-embedded. Every shard must be present, finished and built with the same settings.
 */
export async function mergeShards(outDir: string, shardDirs: string[]): Promise<MergeReport> {
  const out = path.resolve(outDir);
  const shards: LoadedShard[] = [];
  for (const dir of shardDirs) shards.push(await loadShard(path.resolve(dir)));
  checkComplete(shards);
  const first = shards[0].manifest;
  for (const s of shards) checkSameBuild(first, shards[0].dir, s);

  const lock = await IndexLock.acquire(out);
  try {
    if (await readStoredManifest(out)) throw new Error(`${out} already holds an index: merge into a new directory`);
    const table = new PassageTable();
    const lexical = LexicalIndex.create();
    const dense = first.encoder ? DenseIndex.create(first.encoder.dim) : undefined;
    dense?.reserve(shards.reduce((n, s) => n + s.table.byLabel.size, 0));
    // Corpus files in the order the shard builds read them (the order given on the command line).
    for (const file of shards[0].table.files.keys()) {
      const records = shards.map((s) => fileRecord(s, file, shards[0]));
      // Each row lies in one shard, with its pieces in order: a stable sort by line restores the file's order.
      const passages = records
        .flatMap((record, i) => record.passageIds.map((id) => ({ passage: shards[i].table.byId.get(id)!, from: shards[i] })))
        .sort((a, b) => a.passage.startLine - b.passage.startLine);
      for (const { passage, from } of passages) {
        const vector = passage.label >= 0 ? from.dense?.vector(passage.label) : undefined;
        const stored: StoredPassage = { ...passage, label: vector ? table.nextLabel++ : -1 };
        if (vector) dense!.addStored(stored.label, vector);
        lexical.add(stored);
        table.put(stored);
      }
      table.files.set(file, { ...records[0], passageIds: passages.map((p) => p.passage.id) });
    }
    const now = new Date().toISOString();
    const { shard: _shard, partial: _partial, ...settings } = first;
    const manifest: IndexManifest = { ...settings, createdAt: now, updatedAt: now, roots: [], files: table.files.size, passages: table.byId.size };
    await saveGeneration(out, { manifest, table, lexical, dense });
    return { shards: shards.length, files: table.files.size, passages: table.byId.size, dense: dense !== undefined };
  } finally {
    await lock.release();
  }
}

async function loadShard(dir: string): Promise<LoadedShard> {
  const loaded = await loadGeneration(dir);
  if (loaded.problem) throw new Error(`${dir}: ${loaded.problem}`);
  const manifest = loaded.manifest;
  if (!manifest) throw new Error(`${dir} holds no index`);
  if (!manifest.shard) throw new Error(`${dir} is not a shard: build shards with index --passages FILE --shard-id I --num-shards N`);
  if (manifest.partial) {
    throw new Error(`${dir} (shard ${manifest.shard.id} of ${manifest.shard.count}) is unfinished: run its index command again to complete it`);
  }
  return { dir, shard: manifest.shard, manifest, table: loaded.table, dense: loaded.dense };
}

/** All N shards, each once. */
function checkComplete(shards: LoadedShard[]): void {
  if (shards.length === 0) throw new Error('no shard directories given');
  const count = shards[0].shard.count;
  const byId = new Map<number, string>();
  for (const s of shards) {
    if (s.shard.count !== count) throw new Error(`${s.dir} is a shard of ${s.shard.count}, ${shards[0].dir} of ${count}: they come from different splits`);
    const twice = byId.get(s.shard.id);
    if (twice) throw new Error(`${twice} and ${s.dir} both hold shard ${s.shard.id} of ${count}`);
    byId.set(s.shard.id, s.dir);
  }
  const missing = Array.from({ length: count }, (_, id) => id).filter((id) => !byId.has(id));
  if (missing.length > 0) throw new Error(`shard${missing.length > 1 ? 's' : ''} ${missing.join(', ')} of ${count} missing: give all ${count} shard directories`);
}

/** Same format, chunking, encoder and corpus files: otherwise the merge would mix passages cut or embedded differently. */
function checkSameBuild(first: IndexManifest, firstDir: string, s: LoadedShard): void {
  const m = s.manifest;
  const differs = (what: string) => new Error(`${s.dir} and ${firstDir} were built with different ${what}: rebuild the shards with the same settings`);
  if (m.formatVersion !== INDEX_FORMAT_VERSION) throw differs('index formats');
  if (m.chunking !== first.chunking) throw differs('chunking settings or tokenizers');
  const encoders = m.encoder || first.encoder ? denseMismatch(first, m.encoder) : undefined;
  if (encoders) throw differs(`encoders (${encoders})`);
  if (m.roots.length > 0) throw new Error(`${s.dir} also indexes folders (${m.roots.join(', ')}); shards hold corpus files only`);
}

/** A corpus file's record in a shard; every shard reads every file (and may have no rows of it). */
function fileRecord(s: LoadedShard, file: string, first: LoadedShard): FileRecord {
  const record = s.table.files.get(file);
  const expected = first.table.files.get(file)!;
  if (!record) throw new Error(`${s.dir} has not indexed ${file}, which ${first.dir} has: build every shard from the same corpus files (at the same path)`);
  if (record.size !== expected.size) {
    throw new Error(`${s.dir} and ${first.dir} indexed different versions of ${file} (${record.size} and ${expected.size} bytes): rebuild the shards from one version`);
  }
  if (s.table.files.size !== first.table.files.size) throw new Error(`${s.dir} and ${first.dir} indexed different corpus files: build every shard from the same files`);
  return record;
}
