import { Option, type Command } from 'commander';
import { SingleBar, Presets } from 'cli-progress';
import { WorkspaceIndex } from '../index/workspace-index';
import { DEFAULT_QUERY_SOURCE, loadQueries } from '../lsr/query-source';
import { DEFAULT_LSR_SETTINGS, trainLsr, type LsrEvent, type LsrSettings, type TrainingMode } from '../lsr/lsr-trainer';
import { DEVICE_CHOICES, type Device } from '../encoder/cuda-provider';
import { addIndexDirOption, displayPath } from './index-dir';
import { addLmOptions, scorerFromOptions, type LmCliOptions } from './lm-options';
import { nonNegativeInt, positiveInt, positiveNumber } from './option-parsers';

interface TrainCliOptions extends LmCliOptions {
  indexDir: string;
  model?: string;
  output: string;
  data?: string;
  mode: TrainingMode;
  k: number;
  gamma: number;
  beta: number;
  lr: number;
  warmup: number;
  batch: number;
  steps: number;
  refreshEvery: number;
  checkpointEvery: number;
  freezeLayers: number;
  trainWordEmbeddings?: boolean;
  seed: number;
  queriesPerFile: number;
  device: Device;
  resume?: boolean;
}

const D = DEFAULT_LSR_SETTINGS;

export function registerTrainCommand(program: Command): void {
  const cmd = program
    .command('train')
    .description("fine-tune the retriever with REPLUG LM-Supervised Retrieval against an LM teacher; writes a model folder")
    .requiredOption('--output <dir>', 'where the tuned model folder, checkpoints and metrics.jsonl go')
    .option('--model <pathOrId>', 'encoder to start from (default: the one the index was built with)')
    .option('--data <csv>', 'training queries (id,text); default: points sampled in a held-out share of the indexed files')
    .addOption(new Option('--mode <mode>', 'query-tower: only the query encoder learns, the index stays valid; shared: REPLUG, documents re-embedded every --refresh-every steps').choices(['query-tower', 'shared']).default(D.mode))
    .option('-k, --k <n>', 'passages retrieved and scored per query', positiveInt, D.k)
    .option('--gamma <t>', 'retrieval temperature of P_R = softmax(cos/γ)', positiveNumber, D.gamma)
    .option('--beta <t>', 'LM temperature of Q = softmax(log P_LM/β)', positiveNumber, D.beta)
    .option('--lr <rate>', 'peak AdamW learning rate', positiveNumber, D.lr)
    .option('--warmup <share>', 'share of steps warming the rate up', positiveNumber, D.warmupFraction)
    .option('--batch <n>', 'queries per step', positiveInt, D.batchSize)
    .option('--steps <n>', 'optimizer steps', positiveInt, D.steps)
    .option('--refresh-every <n>', 'shared mode: steps between document re-embeddings', positiveInt, D.refreshEvery)
    .option('--checkpoint-every <n>', 'steps between checkpoints', positiveInt, D.checkpointEvery)
    .option('--freeze-layers <n>', 'freeze the embeddings and the lowest n layers', nonNegativeInt, D.freezeLayers)
    .option('--train-word-embeddings', 'also train the word-embedding table (frozen by default)')
    .option('--seed <n>', 'seed for query sampling and order', nonNegativeInt, D.seed)
    .option('--queries-per-file <n>', 'workspace queries sampled per held-out file', positiveInt, DEFAULT_QUERY_SOURCE.perFile)
    .addOption(new Option('--device <device>', 'where training runs').choices(DEVICE_CHOICES).default('auto'))
    .option('--resume', 'continue the interrupted run in --output (same settings)');
  addIndexDirOption(cmd);
  addLmOptions(cmd);
  cmd.action(async (opts: TrainCliOptions) => {
    const manifest = await WorkspaceIndex.readManifest(opts.indexDir);
    const model = opts.model ?? manifest?.encoder?.model;
    if (!manifest?.encoder || !model) {
      throw new Error(`the index at ${opts.indexDir} has no vectors: run \`replug-code index <folder> --model M --index-dir ${opts.indexDir}\` first`);
    }
    const settings: LsrSettings = {
      mode: opts.mode,
      k: opts.k,
      gamma: opts.gamma,
      beta: opts.beta,
      lr: opts.lr,
      warmupFraction: opts.warmup,
      batchSize: opts.batch,
      steps: opts.steps,
      refreshEvery: opts.refreshEvery,
      checkpointEvery: opts.checkpointEvery,
      freezeWordEmbeddings: !opts.trainWordEmbeddings,
      freezeLayers: opts.freezeLayers,
      seed: opts.seed,
    };
    const reader = await WorkspaceIndex.open(opts.indexDir, { readOnly: true });
    const queries = await loadQueries(reader.passages(), {
      ...DEFAULT_QUERY_SOURCE,
      data: opts.data,
      split: 'train',
      contextTokens: opts.contextTokens,
      continuationTokens: opts.continuationTokens,
      perFile: opts.queriesPerFile,
      seed: opts.seed,
    });
    await reader.close();
    process.stderr.write(`${queries.length} training queries from ${opts.data ? displayPath(opts.data) : `the training share (${Math.round(DEFAULT_QUERY_SOURCE.trainFraction * 100)}%) of the indexed files`}\n`);

    // y was cut to --continuation-tokens by the corpus's token estimate; the LM's tokenizer may split code finer
    // (byte-level vocabularies), and a continuation is never cut, so its LM budget only guards against runaway input.
    const scorer = scorerFromOptions(opts, { continuationTokens: 4 * opts.continuationTokens });
    const abort = new AbortController();
    const onSigint = () => abort.abort();
    process.once('SIGINT', onSigint);
    const progress = new TrainProgress(settings.steps);
    try {
      const record = await trainLsr({
        indexDir: opts.indexDir,
        model,
        output: opts.output,
        scorer,
        queries,
        settings,
        device: opts.device,
        resume: opts.resume,
        signal: abort.signal,
        onEvent: (e) => progress.update(e),
      });
      progress.stop();
      const stats = scorer.stats();
      process.stdout.write(
        `${abort.signal.aborted ? 'stopped' : 'trained'} ${record.step}/${settings.steps} steps (${settings.mode}); ` +
          `LM: ${stats.scoredPairs} pairs, ${stats.cacheHits} cached, ${stats.requestsPerSecond.toFixed(1)} req/s\n` +
          (abort.signal.aborted
            ? `checkpoint saved in ${displayPath(opts.output)}/checkpoints: run again with --resume to finish\n`
            : `model: ${displayPath(opts.output)} (use it with search/eval --model; metrics in ${displayPath(opts.output)}/metrics.jsonl)\n`),
      );
    } finally {
      progress.stop();
      process.off('SIGINT', onSigint);
    }
  });
}

/** A bar with the running loss on a terminal; one line per 10 steps otherwise. */
class TrainProgress {
  private bar: SingleBar | undefined;

  constructor(private readonly steps: number) {}

  update(e: LsrEvent): void {
    if (e.type === 'step') {
      if (process.stderr.isTTY) {
        this.bar ??= new SingleBar({ format: 'training |{bar}| {value}/{total} steps · loss {loss} · {secs} s/step · eta {eta_formatted}', stream: process.stderr }, Presets.shades_classic);
        if (!this.bar.isActive) this.bar.start(this.steps, e.step - 1, { loss: '-', secs: '-' });
        this.bar.update(e.step, { loss: e.loss.toFixed(4), secs: e.seconds.total.toFixed(2) });
      } else if (e.step % 10 === 0 || e.step === e.steps) {
        process.stderr.write(`step ${e.step}/${e.steps} loss ${e.loss.toFixed(4)} H(P_R) ${e.entropyRetriever.toFixed(3)} H(Q) ${e.entropyTeacher.toFixed(3)} ${e.seconds.total.toFixed(2)} s\n`);
      }
    } else if (e.type === 'checkpoint' && !process.stderr.isTTY) {
      process.stderr.write(`checkpoint at step ${e.step}\n`);
    } else if (e.type === 'refresh' && !process.stderr.isTTY) {
      process.stderr.write(`re-embedded ${e.passages} passages in ${e.seconds.toFixed(1)} s\n`);
    }
  }

  stop(): void {
    this.bar?.stop();
  }
}
