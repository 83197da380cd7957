import { createHash } from 'node:crypto';
import { createReadStream, promises as fs, type Stats } from 'node:fs';
import * as path from 'node:path';
import { INDEX_FORMAT_VERSION, type IndexManifest } from './manifest';

/**
 * Checksums that make a damaged generation detectable before any of its bytes reach a parser. Generations are
 * written atomically, so a mismatch means outside damage (disk, a careless edit, a copy cut short): hnswlib's
 * native reader trusts its input and the BM25 loader would search garbage, so nothing is parsed unverified.
 */

/** Length and sha256 of one file of a generation, as recorded in its manifest. */
export interface PartChecksum {
  bytes: number;
  sha256: string;
}

export type PartChecksums = Record<string, PartChecksum>;

/** A generation that cannot be used: damaged bytes, or a layout this version does not read. */
export class UnusableGeneration extends Error {
  override readonly name = 'UnusableGeneration';
  constructor(
    message: string,
    readonly outdated = false,
    /** The encoder its manifest records, when the manifest itself is intact: a rebuild can keep using it. */
    readonly encoderModel?: string,
  ) {
    super(message);
  }
}

function checksum(data: Uint8Array): PartChecksum {
  return { bytes: data.length, sha256: createHash('sha256').update(data).digest('hex') };
}

/** Writes `chunks` to `file` one after another, flushes it to disk, and returns its length and sha256. */
export async function writeChecksummed(file: string, chunks: Iterable<string | Uint8Array>): Promise<PartChecksum> {
  const hash = createHash('sha256');
  let bytes = 0;
  const handle = await fs.open(file, 'w');
  try {
    for (const chunk of chunks) {
      const data = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
      hash.update(data);
      bytes += data.length;
      await handle.write(data);
    }
    await handle.sync();
  } finally {
    await handle.close();
  }
  return { bytes, sha256: hash.digest('hex') };
}

/** Checksum of a file written by a native writer, streamed so a large vector file is never held whole. */
export async function fileChecksum(file: string): Promise<PartChecksum> {
  const hash = createHash('sha256');
  let bytes = 0;
  for await (const chunk of createReadStream(file)) {
    hash.update(chunk as Buffer);
    bytes += (chunk as Buffer).length;
  }
  return { bytes, sha256: hash.digest('hex') };
}

/** The manifest with the parts' checksums, sealed by a checksum of its own JSON so a garbled manifest is caught too. */
export function sealManifest(manifest: IndexManifest, parts: PartChecksums): string {
  const body = { ...manifest, parts };
  return JSON.stringify({ ...body, sha256: sha256Text(JSON.stringify(body)) }, null, 2);
}

/** Parses and checks a sealed manifest; throws `UnusableGeneration` when it is damaged or of another format. */
export function openManifest(text: string): { manifest: IndexManifest; parts: PartChecksums } {
  let sealed: Record<string, unknown>;
  try {
    sealed = JSON.parse(text) as Record<string, unknown>;
  } catch (err) {
    throw new UnusableGeneration(`manifest.json is not valid JSON (${(err as Error).message})`);
  }
  if (typeof sealed !== 'object' || sealed === null) throw new UnusableGeneration('manifest.json is not an object');
  const { sha256, ...body } = sealed;
  const version = body.formatVersion;
  if (typeof sha256 !== 'string') {
    // Format 1 had no seal: an older index is rebuilt, never misread.
    if (typeof version === 'number' && version < INDEX_FORMAT_VERSION) {
      throw new UnusableGeneration(`index format ${version} is outdated`, true, recordedModel(body));
    }
    throw new UnusableGeneration('manifest.json has no checksum');
  }
  if (sha256Text(JSON.stringify(body)) !== sha256) throw new UnusableGeneration('manifest.json does not match its checksum');
  if (version !== INDEX_FORMAT_VERSION) {
    throw new UnusableGeneration(`index format ${String(version)} is not the current ${INDEX_FORMAT_VERSION}`, true, recordedModel(body));
  }
  const { parts, ...manifest } = body;
  return { manifest: manifest as unknown as IndexManifest, parts: parts as PartChecksums };
}

function recordedModel(manifest: Record<string, unknown>): string | undefined {
  const model = (manifest.encoder as { model?: unknown } | undefined)?.model;
  return typeof model === 'string' ? model : undefined;
}

/**
 * Parts this process has verified, by path, with the inode, size and mtime they had then. `search` reads the
 * manifest (verifying every part) and then opens the index (reading them again): a committed generation never
 * changes, and a part rewritten or replaced since has another inode, size or mtime, so it is hashed again.
 */
const verified = new Map<string, string>();

function stamp(stat: Stats, expected: PartChecksum): string {
  return `${stat.ino}:${stat.size}:${stat.mtimeMs}:${expected.sha256}`;
}

/** Reads one part of a generation and returns its bytes once they match the manifest's length and checksum. */
export async function readVerified(dir: string, name: string, parts: PartChecksums): Promise<Buffer> {
  const expected = expectedPart(name, parts);
  const file = path.join(dir, name);
  const { stat, data } = await partHandle(file, name, async (handle) => ({ stat: await handle.stat(), data: await handle.readFile() }));
  if (verified.get(file) !== stamp(stat, expected)) {
    assertMatches(name, checksum(data), expected);
    verified.set(file, stamp(stat, expected));
  }
  return data;
}

/** Verifies a part that a native reader will open by path (the vector file). */
export async function verifyFile(dir: string, name: string, parts: PartChecksums): Promise<void> {
  const expected = expectedPart(name, parts);
  const file = path.join(dir, name);
  const stat = await partHandle(file, name, (handle) => handle.stat());
  if (verified.get(file) === stamp(stat, expected)) return;
  // The length first: a truncated file is told without hashing it.
  if (stat.size !== expected.bytes) assertMatches(name, { bytes: stat.size, sha256: '' }, expected);
  assertMatches(name, await fileChecksum(file), expected);
  verified.set(file, stamp(stat, expected));
}

async function partHandle<T>(file: string, name: string, use: (handle: fs.FileHandle) => Promise<T>): Promise<T> {
  const handle = await fs.open(file, 'r').catch((err: NodeJS.ErrnoException) => {
    throw new UnusableGeneration(`${name} cannot be read (${err.code ?? err.message})`);
  });
  try {
    return await use(handle);
  } finally {
    await handle.close();
  }
}

function expectedPart(name: string, parts: PartChecksums): PartChecksum {
  const expected = parts?.[name];
  if (!expected || !Number.isInteger(expected.bytes) || typeof expected.sha256 !== 'string') {
    throw new UnusableGeneration(`manifest.json records no checksum for ${name}`);
  }
  return expected;
}

function assertMatches(name: string, actual: PartChecksum, expected: PartChecksum): void {
  if (actual.bytes !== expected.bytes) {
    throw new UnusableGeneration(`${name} has ${actual.bytes} bytes, the manifest says ${expected.bytes}`);
  }
  if (actual.sha256 !== expected.sha256) throw new UnusableGeneration(`${name} does not match its sha256 checksum`);
}

function sha256Text(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}
