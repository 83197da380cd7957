import type { ShardSpec } from '../corpus/shard';

/**
 * Bumped whenever the on-disk layout of a generation changes; an older index is rebuilt, never misread.
 * 2: the manifest records a length and sha256 per file and a checksum of itself (see generation-integrity.ts).
 */
export const INDEX_FORMAT_VERSION = 2;

export interface EncoderStamp {
  fingerprint: string;
  dim: number;
  /** The model path or id the vectors came from, so `search` can load the same encoder unasked. */
  model?: string;
}

export interface IndexManifest {
  formatVersion: number;
  /** Absent for a lexical-only index. */
  encoder?: EncoderStamp;
  /** Chunking settings and the token counter they were cut with; a change re-chunks every file. */
  chunking: string;
  createdAt: string;
  updatedAt: string;
  roots: string[];
  files: number;
  passages: number;
  /** Set when the index holds one shard of its corpus files (`index --shard-id I --num-shards N`). */
  shard?: ShardSpec;
  /** Set by the checkpoints of an update that has not finished (killed, stopped, failed): a rerun completes it. */
  partial?: true;
}

/** Why an existing index cannot be reused as is, or undefined when it can. */
export function rebuildReason(
  manifest: IndexManifest,
  wanted: { chunking: string },
): string | undefined {
  if (manifest.formatVersion !== INDEX_FORMAT_VERSION) {
    return `index format ${manifest.formatVersion} is not the current ${INDEX_FORMAT_VERSION}`;
  }
  if (manifest.chunking !== wanted.chunking) return 'the chunking settings or the tokenizer changed';
  return undefined;
}

/** Whether stored vectors can be kept for the encoder now configured. */
export function denseCompatible(manifest: IndexManifest | undefined, encoder: EncoderStamp | undefined): boolean {
  if (!manifest?.encoder || !encoder) return false;
  return manifest.encoder.fingerprint === encoder.fingerprint && manifest.encoder.dim === encoder.dim;
}
