import * as path from 'node:path';
import { Option, type Command } from 'commander';
import type { TokenBudgets } from '../lm/budgets';
import { WorkspaceIndex } from '../index/workspace-index';
import { readyTeacher } from '../lsr/fit-queries';
import { DEFAULT_QUERY_SOURCE, loadQueries } from '../lsr/query-source';
import {
  checkOutputFolder,
  DEFAULT_LSR_SETTINGS,
  readCheckpointState,
  trainLsr,
  type CheckpointState,
  type LsrEvent,
  type LsrSettings,
  type TrainingMode,
} from '../lsr/lsr-trainer';
import { DEVICE_CHOICES, noticeOnce, type Device } from '../encoder/cuda-provider';
import { addIndexDirOption, displayPath } from './index-dir';
import { addLmOptions, requestedBudgets, requireLm, scorerFromOptions, type LmCliOptions } from './lm-options';
import { nonNegativeInt, positiveInt, positiveNumber } from './option-parsers';
import { INTERRUPTED_EXIT_CODE } from './interrupted';
import { RunProgress } from './run-progress';

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
  abstain?: boolean;
  abstainLr: number;
  queriesPerFile: number;
  device: Device;
  resume?: boolean;
  overwrite?: boolean;
  allowNewTeacher?: boolean;
}

/** What the CLI saves with every checkpoint, so `--resume` continues the same run without repeating its flags. */
interface RunSpec {
  indexDir: string;
  model: string;
  teacher: { url: string; model: string };
  budgets: TokenBudgets;
  /** Where queries come from and the (estimated) token budgets they were cut to. */
  queries: { data?: string; perFile: number; contextTokens: number; continuationTokens: number };
  device: Device;
}

const D = DEFAULT_LSR_SETTINGS;

/** Each training setting and the option that sets it. */
const SETTING_OPTIONS: { option: keyof TrainCliOptions; flag: string; setting: keyof LsrSettings; value: (o: TrainCliOptions) => LsrSettings[keyof LsrSettings] }[] = [
  { option: 'mode', flag: '--mode', setting: 'mode', value: (o) => o.mode },
  { option: 'k', flag: '-k', setting: 'k', value: (o) => o.k },
  { option: 'gamma', flag: '--gamma', setting: 'gamma', value: (o) => o.gamma },
  { option: 'beta', flag: '--beta', setting: 'beta', value: (o) => o.beta },
  { option: 'lr', flag: '--lr', setting: 'lr', value: (o) => o.lr },
  { option: 'warmup', flag: '--warmup', setting: 'warmupFraction', value: (o) => o.warmup },
  { option: 'batch', flag: '--batch', setting: 'batchSize', value: (o) => o.batch },
  { option: 'steps', flag: '--steps', setting: 'steps', value: (o) => o.steps },
  { option: 'refreshEvery', flag: '--refresh-every', setting: 'refreshEvery', value: (o) => o.refreshEvery },
  { option: 'checkpointEvery', flag: '--checkpoint-every', setting: 'checkpointEvery', value: (o) => o.checkpointEvery },
  { option: 'trainWordEmbeddings', flag: '--train-word-embeddings', setting: 'freezeWordEmbeddings', value: (o) => !o.trainWordEmbeddings },
  { option: 'freezeLayers', flag: '--freeze-layers', setting: 'freezeLayers', value: (o) => o.freezeLayers },
  { option: 'seed', flag: '--seed', setting: 'seed', value: (o) => o.seed },
  { option: 'abstain', flag: '--abstain', setting: 'abstain', value: (o) => o.abstain ?? false },
  { option: 'abstainLr', flag: '--abstain-lr', setting: 'abstainLr', value: (o) => o.abstainLr },
];

export function registerTrainCommand(program: Command): void {
  const cmd = program
    .command('train')
    .description("fine-tune the retriever with REPLUG LM-Supervised Retrieval against an LM teacher; writes a model folder")
    .requiredOption('--output <dir>', 'where the tuned model folder, checkpoints and metrics.jsonl go (required; new or empty unless --resume or --overwrite)')
    .option('--model <pathOrId>', 'encoder to start from (default: the one the index was built with)')
    .option('--data <csv>', 'training queries (id,text); default: points sampled in a seeded share of the indexed files (the training share)')
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
    .option('--abstain', 'put an empty passage among each query\'s candidates, so the retriever learns when no passage helps (saved as abstain.safetensors)')
    .option('--abstain-lr <rate>', 'peak learning rate of the empty passage\'s score (cosine scale)', positiveNumber, D.abstainLr)
    .option('--queries-per-file <n>', 'workspace queries sampled per training file', positiveInt, DEFAULT_QUERY_SOURCE.perFile)
    .addOption(new Option('--device <device>', 'where training runs').choices(DEVICE_CHOICES).default('auto'))
    .option('--resume', "continue the interrupted run in --output with its saved settings, teacher and index (flags may only repeat them)")
    .option('--overwrite', 'replace a training run already in --output')
    .option('--allow-new-teacher', 'with --resume: accept another --lm-url / --lm-model than the run started with');
  addIndexDirOption(cmd);
  addLmOptions(cmd);
  cmd.action(async (opts: TrainCliOptions) => {
    // An option counts as given when it came from the command line or a non-empty environment variable.
    const given = (option: string) => ['cli', 'env'].includes(cmd.getOptionValueSource(option) ?? '') && cmd.getOptionValue(option) !== '';
    const saved = opts.resume ? await savedRun(opts.output) : undefined;
    if (!opts.resume) await checkOutputFolder(opts.output, opts.overwrite ?? false);
    if (saved) checkResumeFlags(opts, saved, given);
    const settings: LsrSettings = saved?.settings ?? settingsFromOptions(opts);
    const spec = saved?.spec;
    const indexDir = path.resolve(spec && !given('indexDir') ? spec.indexDir : opts.indexDir);
    // A resumed run keeps its teacher unless one is given (checkResumeFlags has allowed that).
    const lm = requireLm({
      ...opts,
      lmUrl: spec && !given('lmUrl') ? spec.teacher.url : opts.lmUrl,
      lmModel: spec && !given('lmModel') ? spec.teacher.model : opts.lmModel,
    });

    const manifest = await WorkspaceIndex.readManifest(indexDir);
    const model = spec?.model ?? opts.model ?? manifest?.encoder?.model;
    if (!manifest?.encoder || !model) {
      throw new Error(`the index at ${displayPath(indexDir)} has no vectors: run \`replug-code index <folder> --model M --index-dir ${displayPath(indexDir)}\` first`);
    }
    if (saved) process.stderr.write(`resuming ${displayPath(opts.output)} from step ${saved.step} of ${settings.steps}\n`);
    const querySpec = spec?.queries ?? {
      data: opts.data && path.resolve(opts.data),
      perFile: opts.queriesPerFile,
      contextTokens: opts.contextTokens ?? DEFAULT_QUERY_SOURCE.contextTokens,
      continuationTokens: opts.continuationTokens ?? DEFAULT_QUERY_SOURCE.continuationTokens,
    };
    const reader = await WorkspaceIndex.open(indexDir, { readOnly: true });
    const sampled = await loadQueries(reader.passages(), {
      ...DEFAULT_QUERY_SOURCE,
      ...querySpec,
      split: 'train',
      seed: settings.seed,
    }).finally(() => reader.close());
    process.stderr.write(`${sampled.length} training queries from ${querySpec.data ? displayPath(querySpec.data) : `the training share (${Math.round(DEFAULT_QUERY_SOURCE.trainFraction * 100)}%) of the indexed files`}\n`);

    const scorer = scorerFromOptions({ ...opts, ...lm, ...budgetOptions(spec?.budgets ?? requestedBudgets(opts)) });
    const { queries, budgets } = await readyTeacher(scorer, sampled, (line) => process.stderr.write(`${line}\n`));
    const runSpec: RunSpec = {
      indexDir,
      model,
      teacher: { url: lm.lmUrl, model: lm.lmModel },
      budgets,
      queries: querySpec,
      device: spec?.device ?? opts.device,
    };
    const abort = new AbortController();
    const onSigint = () => abort.abort();
    process.once('SIGINT', onSigint);
    const progress = new TrainProgress(settings.steps);
    try {
      const record = await trainLsr({
        indexDir,
        model,
        output: opts.output,
        scorer,
        queries,
        settings,
        device: runSpec.device,
        resume: opts.resume,
        overwrite: opts.overwrite,
        spec: runSpec,
        signal: abort.signal,
        onEvent: (e) => progress.update(e, saved?.step ?? 0),
      });
      progress.stop();
      const stats = scorer.stats();
      const out = displayPath(opts.output);
      process.stdout.write(
        `${abort.signal.aborted ? 'stopped at' : 'trained'} ${record.step}/${settings.steps} steps (${settings.mode}); ` +
          `LM: ${stats.scoredPairs} pairs (${stats.cacheHits} cached) in ${stats.completionRequests} completion requests, ${stats.pairsPerSecond.toFixed(1)} pairs/s\n` +
          (abort.signal.aborted
            ? `checkpoint saved in ${out}/checkpoints: run the same command with --resume to finish\n`
            : `model: ${out} — search with \`search --model ${out}\`, evaluate with \`eval --tuned ${out}\`, compare with \`compare QUERY --tuned ${out}\`; metrics in ${out}/metrics.jsonl\n`),
      );
      if (abort.signal.aborted) process.exitCode = INTERRUPTED_EXIT_CODE;
    } finally {
      progress.stop();
      process.off('SIGINT', onSigint);
    }
  });
}

function settingsFromOptions(opts: TrainCliOptions): LsrSettings {
  const settings = { ...DEFAULT_LSR_SETTINGS };
  for (const { setting, value } of SETTING_OPTIONS) (settings as Record<string, unknown>)[setting] = value(opts);
  return settings;
}

async function savedRun(output: string): Promise<CheckpointState & { spec?: RunSpec }> {
  const state = await readCheckpointState(output);
  if (!state) throw new Error(`nothing to resume: ${displayPath(output)} has no checkpoint; start the run without --resume`);
  return { ...state, spec: state.spec as RunSpec | undefined };
}

/**
 * `--resume` continues the saved run: flags may repeat its values but not change them (a changed setting, index,
 * query source or budget would make the resumed run a different one). A new teacher needs --allow-new-teacher.
 */
function checkResumeFlags(opts: TrainCliOptions, saved: CheckpointState & { spec?: RunSpec }, given: (option: string) => boolean): void {
  const changed: string[] = [];
  for (const { option, flag, setting, value } of SETTING_OPTIONS) {
    if (given(option) && value(opts) !== saved.settings[setting]) changed.push(`${flag} (the run has ${String(saved.settings[setting])})`);
  }
  const spec = saved.spec;
  if (spec) {
    const differs = (option: string, now: unknown, then: unknown, flag: string) => {
      if (given(option) && now !== then) changed.push(`${flag} (the run has ${String(then)})`);
    };
    differs('indexDir', path.resolve(opts.indexDir), spec.indexDir, '--index-dir');
    differs('model', opts.model, spec.model, '--model');
    differs('data', opts.data && path.resolve(opts.data), spec.queries.data, '--data');
    differs('queriesPerFile', opts.queriesPerFile, spec.queries.perFile, '--queries-per-file');
    differs('docTokens', opts.docTokens, spec.budgets.doc, '--doc-tokens');
    differs('contextTokens', opts.contextTokens, spec.budgets.context, '--context-tokens');
    differs('continuationTokens', opts.continuationTokens, spec.budgets.continuation, '--continuation-tokens');
    const teacherChanged = (given('lmUrl') && opts.lmUrl !== spec.teacher.url) || (given('lmModel') && opts.lmModel !== spec.teacher.model);
    if (teacherChanged && !opts.allowNewTeacher) {
      changed.push(
        `the teacher (the run was trained by "${spec.teacher.model}" at ${spec.teacher.url}; another LM changes the training signal — pass --allow-new-teacher to continue with it anyway)`,
      );
    }
  }
  if (changed.length) {
    throw new Error(`--resume continues the saved run, but these change it: ${changed.join('; ')}. Drop them, or start a new run with another --output`);
  }
}

function budgetOptions(budgets: Partial<TokenBudgets>): Pick<LmCliOptions, 'docTokens' | 'contextTokens' | 'continuationTokens'> {
  return { docTokens: budgets.doc, contextTokens: budgets.context, continuationTokens: budgets.continuation };
}

/** A bar with the running loss on a terminal; a line per step otherwise. */
class TrainProgress {
  private readonly progress: RunProgress;
  private started = false;

  constructor(steps: number) {
    this.progress = new RunProgress('training', steps, true);
  }

  update(e: LsrEvent, resumedAt: number): void {
    if (!this.started) {
      this.progress.start(resumedAt);
      this.started = true;
    }
    if (e.type === 'step') {
      const empty = e.abstention ? ` P_R(∅) ${e.abstention.retriever.toFixed(3)} Q(∅) ${e.abstention.teacher.toFixed(3)}` : '';
      this.progress.update(e.step, `loss ${e.loss.toFixed(4)} H(P_R) ${e.entropyRetriever.toFixed(3)} H(Q) ${e.entropyTeacher.toFixed(3)}${empty} · ${e.seconds.total.toFixed(2)} s/step`);
    } else if (e.type === 'notice') {
      noticeOnce(e.message, (line) => process.stderr.write(`${process.stderr.isTTY ? '\n' : ''}${line}\n`));
    } else if (e.type === 'refresh') {
      process.stderr.write(`${process.stderr.isTTY ? '\n' : ''}re-embedded ${e.passages} passages in ${e.seconds.toFixed(1)} s\n`);
    }
  }

  stop(): void {
    this.progress.stop();
  }
}
