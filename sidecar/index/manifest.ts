import type { ShardSpec } from '../corpus/shard';
import type { Precision } from '../encoder/precision';

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
  /** The graph precision the vectors came from; absent in indexes written before int8 existed (they are fp32). */
  precision?: Precision;
}

/** The precision of a stamp's vectors. */
export function stampPrecision(stamp: EncoderStamp): Precision {
  return stamp.precision ?? 'fp32';
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

/** Why stored vectors cannot be kept for the encoder now configured, or undefined when they can. */
export function denseMismatch(manifest: IndexManifest | undefined, encoder: EncoderStamp | undefined): string | undefined {
  if (!manifest?.encoder || !encoder) return 'the index has no vectors yet';
  const stored = manifest.encoder;
  if (stored.fingerprint !== encoder.fingerprint || stored.dim !== encoder.dim) return 'the encoder changed';
  // Vectors of two precisions differ slightly; an index holds one kind, so a switch re-embeds everything.
  if (stampPrecision(stored) !== stampPrecision(encoder)) return `the encoder precision changed (${stampPrecision(stored)} → ${stampPrecision(encoder)})`;
  return undefined;
}

/** Whether stored vectors can be kept for the encoder now configured. */
export function denseCompatible(manifest: IndexManifest | undefined, encoder: EncoderStamp | undefined): boolean {
  return denseMismatch(manifest, encoder) === undefined;
}
