import { Option, type Command } from 'commander';
import { existsSync } from 'node:fs';
import { checkShard, type ShardSpec } from '../corpus/shard';
import { beirCorpusFile } from '../eval/beir-dataset';
import { DEFAULT_CHUNKING } from '../corpus/chunk';
import { CHUNKING_STRATEGIES, type ChunkingStrategy } from '../corpus/file-chunker';
import { DEFAULT_MAX_FILE_BYTES } from '../corpus/walk';
import { IndexDamagedError } from '../index/index-files';
import { stampPrecision } from '../index/manifest';
import { DEFAULT_CHECKPOINT_SECONDS, WorkspaceIndex, type IndexReport } from '../index/workspace-index';
import { addIndexDirOption, displayPath } from './index-dir';
import { addModelOptions, encoderFromOptions, type ModelCliOptions } from './model-options';
import { nonNegativeInt, positiveInt } from './option-parsers';
import { Interrupted } from './interrupted';
import { count } from './count';
import { escapeControls } from './printable';
import { ProgressReporter } from './progress-reporter';

interface IndexCliOptions extends ModelCliOptions {
  indexDir: string;
  passages?: string[];
  beir?: string;
  shardId?: number;
  numShards?: number;
  include?: string[];
  exclude?: string[];
  keep?: string[];
  maxFileBytes?: number;
  windowLines?: number;
  strideLines?: number;
  maxTokens?: number;
  chunking?: ChunkingStrategy;
  checkpointSeconds?: number;
  verbose?: boolean;
}

export function registerIndexCommand(program: Command): void {
  const cmd = program
    .command('index')
    .description('Build or update the index of one or more folders (and/or corpus files: CSV with id,text columns, BEIR-style JSON Lines).')
    .argument('[roots...]', 'folders to index (a multi-root workspace is several folders)')
    .option('--passages <file...>', 'corpus files: CSV with at least the columns id and text, or JSON Lines with _id and text (a title column or field is prepended)')
    .option('--beir <dir>', 'the corpus of a BEIR / CodeRAG-Bench dataset folder (DIR/corpus.jsonl), for eval --beir')
    .option('--shard-id <i>', 'index only shard I (0-based) of the corpus files\' rows, chosen by a hash of the row id; with --num-shards', nonNegativeInt)
    .option('--num-shards <n>', 'how many shards the corpus files are split into (merge them with merge-shards)', positiveInt)
    .option('--include <glob...>', 'only index files matching these globs (relative to each root)')
    .option('--exclude <glob...>', 'also skip files matching these globs')
    .option('--keep <glob...>', 'index files matching these globs even when they look minified or generated, are lock files or match an exclude glob')
    .option('--max-file-bytes <n>', `skip files larger than this (default: ${DEFAULT_MAX_FILE_BYTES})`, positiveInt)
    .option('--window-lines <n>', `lines per passage window (default: ${DEFAULT_CHUNKING.windowLines})`, positiveInt)
    .option('--stride-lines <n>', `lines between window starts (default: ${DEFAULT_CHUNKING.strideLines})`, positiveInt)
    .option('--max-tokens <n>', `token budget per passage (default: ${DEFAULT_CHUNKING.maxTokens})`, positiveInt)
    .addOption(
      new Option(
        '--chunking <strategy>',
        'lines: windows of --window-lines; syntax: functions, classes and methods as passages (windows elsewhere); ' +
          'auto: syntax for Python, windows for the rest (default for a new index; an existing one keeps its strategy)',
      ).choices(CHUNKING_STRATEGIES),
    )
    .option('--checkpoint-seconds <n>', `save progress at least this often during a long run (0: after every batch; default: ${DEFAULT_CHECKPOINT_SECONDS})`, nonNegativeInt)
    .option('-v, --verbose', 'list every skipped file with its reason');
  addIndexDirOption(cmd);
  addModelOptions(cmd, "the index's when it has one, else auto: fp16 on CUDA, else fp32");
  cmd.action(async (roots: string[], opts: IndexCliOptions) => {
    const passages = [...(opts.passages ?? []), ...(opts.beir ? [beirCorpusFile(opts.beir)] : [])];
    if (roots.length === 0 && passages.length === 0) {
      throw new Error('nothing to index: give one or more folders, or --passages FILE.csv, or --beir DATASET_DIR');
    }
    for (const file of [...roots, ...passages]) {
      if (!existsSync(file)) throw new Error(`${file} does not exist`);
    }
    const shard = shardOption(opts);
    // Keep the dense side of an existing index when --model is not repeated, also when it must be rebuilt
    // (`update` does that and says why), and its precision unless --precision names another (which re-embeds).
    let unusable: IndexDamagedError | undefined;
    const stored = await WorkspaceIndex.readManifest(opts.indexDir).catch((err: Error) => {
      if (!(err instanceof IndexDamagedError)) throw err;
      unusable = err;
      return undefined;
    });
    const model = opts.model ?? stored?.encoder?.model ?? unusable?.model;
    if (unusable && !model) {
      process.stderr.write(`warning: the index cannot be used (${unusable.problem}) and does not say which encoder built it: pass --model to rebuild it with vectors\n`);
    }
    const precision = opts.precision ?? (stored?.encoder ? stampPrecision(stored.encoder) : undefined);
    const encoder = await encoderFromOptions({ ...opts, model, precision });
    const progress = new ProgressReporter();
    const index = await WorkspaceIndex.open(opts.indexDir, {
      encoder,
      encoderSpec: model,
      include: opts.include,
      exclude: opts.exclude,
      keep: opts.keep,
      maxFileBytes: opts.maxFileBytes,
      checkpointSeconds: opts.checkpointSeconds,
      shard,
      chunking: definedOnly({ windowLines: opts.windowLines, strideLines: opts.strideLines, maxTokens: opts.maxTokens, strategy: opts.chunking }),
    });
    const { damage } = index.status();
    if (damage) process.stderr.write(`warning: ${damage}\n`);
    const abort = new AbortController();
    const onSigint = () => abort.abort(new Interrupted('interrupted: progress so far was saved; run index again to finish'));
    process.once('SIGINT', onSigint);
    try {
      const report = await index.update(roots, { csv: passages, signal: abort.signal, onProgress: (p) => progress.update(p) });
      progress.stop();
      printReport(report, index, model, opts.verbose ?? false);
    } finally {
      progress.stop();
      process.off('SIGINT', onSigint);
      await index.close();
      await encoder?.dispose();
    }
  });
}

function printReport(report: IndexReport, index: WorkspaceIndex, model: string | undefined, verbose: boolean): void {
  const out = process.stdout;
  if (report.rebuilt) out.write(`rebuilt the index: ${report.rebuilt}\n`);
  out.write(
    `indexed ${count(report.files, 'file')} (${report.filesChanged} changed, ${report.filesRemoved} removed) → ` +
      `${count(report.passages, 'passage')}, ${report.passagesEmbedded} embedded, in ${report.seconds.toFixed(1)} s\n`,
  );
  const reasons = Object.entries(report.skipped).sort((a, b) => b[1] - a[1]);
  const skippedTotal = reasons.reduce((sum, [, n]) => sum + n, 0);
  if (skippedTotal > 0) out.write(`skipped ${count(skippedTotal, 'file')}: ${reasons.map(([r, n]) => `${n} ${r}`).join(', ')}\n`);
  const windowed = Object.entries(report.windowed ?? {});
  if (windowed.length > 0) out.write(`cut into line windows instead of by syntax: ${windowed.map(([r, n]) => `${count(n, 'file')} ${r}`).join(', ')}\n`);
  for (const [grammar, reason] of Object.entries(report.grammarErrors ?? {})) out.write(`the ${grammar} grammar did not load: ${reason}\n`);
  if (verbose) {
    for (const s of report.skippedFiles) out.write(`  skipped ${displayPath(s.path)}: ${s.reason}${s.detail ? ` (${escapeControls(s.detail)})` : ''}\n`);
  }
  const status = index.status();
  const shard = index.storedManifest()?.shard;
  const of = shard ? `, shard ${shard.id} of ${shard.count}: merge all ${shard.count} with merge-shards` : '';
  out.write(`index: ${displayPath(status.dir)} (${status.dense ? `lexical + dense, model ${model}` : 'lexical only'}${of})\n`);
}

/** --shard-id and --num-shards, given together or not at all. */
function shardOption(opts: IndexCliOptions): ShardSpec | undefined {
  if (opts.shardId === undefined && opts.numShards === undefined) return undefined;
  if (opts.shardId === undefined || opts.numShards === undefined) throw new Error('--shard-id and --num-shards go together: give both, or neither');
  const shard = { id: opts.shardId, count: opts.numShards };
  checkShard(shard);
  return shard;
}

function definedOnly<T extends object>(obj: T): Partial<T> {
  return Object.fromEntries(Object.entries(obj).filter(([, v]) => v !== undefined)) as Partial<T>;
}
