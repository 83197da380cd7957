import { createHash } from 'node:crypto';

/** Shard `id` of `count` (0-based), as `--shard-id` and `--num-shards` give it. */
export interface ShardSpec {
  id: number;
  count: number;
}

/**
 * The shard a corpus row belongs to: its id's sha256, taken as a 48-bit number, modulo the shard count. By id rather
 * than by position (the seed's contiguous row ranges), so a shard needs no row count before it starts streaming,
 * and a row keeps its shard when others are added or reordered; sha256 spreads any id scheme evenly.
 */
export function shardOf(rowId: string, count: number): number {
  return createHash('sha256').update(rowId).digest().readUIntBE(0, 6) % count;
}

export function inShard(shard: ShardSpec | undefined): (rowId: string) => boolean {
  if (!shard || shard.count === 1) return () => true;
  return (rowId) => shardOf(rowId, shard.count) === shard.id;
}

/** Checks a shard given on the command line or in a call; the message says what would be valid. */
export function checkShard(shard: ShardSpec): void {
  if (!Number.isInteger(shard.count) || shard.count < 1) throw new RangeError(`the number of shards must be a positive integer, got ${shard.count}`);
  if (!Number.isInteger(shard.id) || shard.id < 0 || shard.id >= shard.count) {
    throw new RangeError(`shard id ${shard.id} is out of range: shards of ${shard.count} are numbered 0 to ${shard.count - 1}`);
  }
}
