import type { Command } from 'commander';
import { mergeShards } from '../index/shards';
import { displayPath } from './index-dir';

export function registerMergeShardsCommand(program: Command): void {
  program
    .command('merge-shards')
    .description('merge the shard indexes of a corpus (index --shard-id I --num-shards N) into one index, as a single build would have made it')
    .argument('<out>', 'new index directory to write')
    .argument('<shards...>', 'the index directories of all N shards')
    .action(async (out: string, shards: string[]) => {
      const started = Date.now();
      const report = await mergeShards(out, shards);
      process.stdout.write(
        `merged ${report.shards} shards → ${report.passages} passages of ${report.files} corpus ${report.files === 1 ? 'file' : 'files'} ` +
          `(${report.dense ? 'lexical + dense' : 'lexical only'}) into ${displayPath(out)} in ${((Date.now() - started) / 1000).toFixed(1)} s\n`,
      );
    });
}
