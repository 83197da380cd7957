import type { Command } from 'commander';
import { Option } from 'commander';
import { DEVICE_CHOICES } from '../encoder/cuda-provider';
import { loadEncoder, type Device } from '../encoder/ort-encoder';
import { candidateIndexFor, evaluateRetrievers, retrieverPrecision, type EvalReport, type Retriever } from '../eval/evaluate';
import { abstentionLines } from '../eval/abstention-text';
import { ndcgGainLines } from '../eval/gain-text';
import { WorkspaceIndex } from '../index/workspace-index';
import { DEFAULT_LSR_SETTINGS } from '../lsr/lsr-trainer';
import { readyTeacher } from '../lsr/fit-queries';
import { DEFAULT_QUERY_SOURCE, loadQueries } from '../lsr/query-source';
import { AbstentionHead } from '../retrieve/abstention';
import { runBeirEval } from './beir-eval-command';
import { addIndexDirOption, displayPath } from './index-dir';
import { addLmOptions, scorerFromOptions, type LmCliOptions } from './lm-options';
import { nonNegativeInt, positiveInt, positiveNumber } from './option-parsers';
import { RunProgress } from './run-progress';

interface EvalCliOptions extends LmCliOptions {
  indexDir: string;
  base?: string;
  tuned?: string;
  data?: string;
  k: number;
  ensembleK: number;
  gamma: number;
  beta: number;
  seed: number;
  queriesPerFile: number;
  maxQueries: number;
  heldOut: 'files' | 'points';
  device: Device;
  json?: boolean;
  beir?: string;
  split: string;
}

/** As the editor's replugCode.eval.maxQueries: enough for a paired standard error, short enough to finish. */
const DEFAULT_MAX_QUERIES = 50;

export function registerEvalCommand(program: Command): void {
  const cmd = program
    .command('eval')
    .description('retrieval metrics and REPLUG ensemble bits/byte on held-out queries: no retrieval vs base vs tuned retriever')
    .option('--base <model>', 'base encoder (default: the one the index was built with)')
    .option('--tuned <model>', 'encoder trained by `train` (its --output folder)')
    .option('--data <csv>', 'held-out queries (id,text); default: points in the held-out evaluation share of the indexed files')
    .option('-k, --k <n>', 'cut-off of nDCG@k and recall@k, and candidates per retriever', positiveInt, 10)
    .option('--ensemble-k <n>', 'passages in the REPLUG ensemble', positiveInt, 10)
    .option('--gamma <t>', 'temperature of the ensemble weights softmax(cos/γ)', positiveNumber, DEFAULT_LSR_SETTINGS.gamma)
    .option('--beta <t>', 'LM temperature of the held-out loss KL(Q ‖ P_R), Q = softmax(log P_LM/β)', positiveNumber, DEFAULT_LSR_SETTINGS.beta)
    .option('--seed <n>', 'seed of the workspace query split (as in train)', nonNegativeInt, DEFAULT_LSR_SETTINGS.seed)
    .option('--queries-per-file <n>', 'workspace queries sampled per held-out file', positiveInt, DEFAULT_QUERY_SOURCE.perFile)
    .option('--max-queries <n>', 'evaluate at most this many held-out queries (each costs a few dozen LM pairs)', positiveInt, DEFAULT_MAX_QUERIES)
    .addOption(
      new Option('--held-out <what>', 'workspace queries from unseen files, or from unseen points of the training files').choices(['files', 'points']).default('files'),
    )
    .addOption(new Option('--device <device>', 'where the encoders run').choices(DEVICE_CHOICES).default('auto'))
    .option('--json', 'print the report as JSON')
    .option('--beir <dir>', 'instead: a BEIR / CodeRAG-Bench dataset folder, its corpus indexed with `index --beir`; BM25, base and tuned judged by its qrels (no LM)')
    .option('--split <name>', 'qrels split of --beir (DIR/qrels/NAME.tsv)', 'test');
  addIndexDirOption(cmd);
  addLmOptions(cmd);
  cmd.action(async (opts: EvalCliOptions) => {
    if (opts.beir) return runBeirEval({ ...opts, beir: opts.beir }, openRetrievers);
    const scorer = scorerFromOptions(opts);
    const { index, retrievers } = await openRetrievers(opts.indexDir, opts.base, opts.tuned, opts.device);
    try {
      const sampled = (
        await loadQueries(index.passages(), {
          ...DEFAULT_QUERY_SOURCE,
          data: opts.data,
          split: opts.heldOut === 'points' ? 'eval-points' : 'eval',
          contextTokens: opts.contextTokens ?? DEFAULT_QUERY_SOURCE.contextTokens,
          continuationTokens: opts.continuationTokens ?? DEFAULT_QUERY_SOURCE.continuationTokens,
          perFile: opts.queriesPerFile,
          seed: opts.seed,
        })
      ).slice(0, opts.maxQueries);
      if (sampled.length === 0) throw new Error('no held-out queries: pass --data, or index more files');
      const { queries } = await readyTeacher(scorer, sampled, (line) => process.stderr.write(`${line}\n`));
      const progress = new RunProgress('evaluating', queries.length);
      progress.start();
      const report = await evaluateRetrievers({
        index,
        retrievers,
        scorer,
        queries,
        k: opts.k,
        ensembleK: opts.ensembleK,
        gamma: opts.gamma,
        beta: opts.beta,
        onProgress: (done) => progress.update(done, 'queries'),
      }).finally(() => progress.stop());
      process.stdout.write(opts.json ? `${JSON.stringify(report, null, 2)}\n` : formatReport(report));
    } finally {
      await index.close();
      for (const r of retrievers) await r.encoder.dispose();
    }
  });
}

export function registerCompareCommand(program: Command): void {
  const cmd = program
    .command('compare')
    .description('top-k of the base and the tuned retriever for one query, side by side')
    .argument('<query>', 'code or question to retrieve for')
    .requiredOption('--tuned <model>', 'encoder trained by `train`, i.e. its --output folder (required)')
    .option('--base <model>', 'base encoder (default: the one the index was built with)')
    .option('-k, --k <n>', 'results per retriever', positiveInt, 5)
    .addOption(new Option('--device <device>', 'where the encoders run').choices(DEVICE_CHOICES).default('auto'));
  addIndexDirOption(cmd);
  cmd.action(async (query: string, opts: { indexDir: string; base?: string; tuned: string; k: number; device: Device }) => {
    const { index, retrievers } = await openRetrievers(opts.indexDir, opts.base, opts.tuned, opts.device);
    try {
      const [base, tuned] = await Promise.all(
        retrievers.map(async (r) => {
          const [vector] = await r.encoder.embed([query]);
          return (await candidateIndexFor(r, index)).search(vector, opts.k, () => false);
        }),
      );
      const width = 60;
      const cell = (s: string) => (s.length > width ? `${s.slice(0, width - 1)}…` : s.padEnd(width));
      process.stdout.write(`${cell(`base: ${retrievers[0].model}`)} | tuned: ${retrievers[1].model}\n`);
      for (let i = 0; i < opts.k; i++) {
        const b = base[i];
        const t = tuned[i];
        const where = (h: typeof b) => (h ? `${displayPath(h.passage.path)}:${h.passage.startLine}-${h.passage.endLine} (${h.similarity.toFixed(3)})` : '');
        process.stdout.write(`${String(i + 1).padStart(2)}. ${cell(where(b))} | ${where(t)}\n`);
      }
    } finally {
      await index.close();
      for (const r of retrievers) await r.encoder.dispose();
    }
  });
}

async function openRetrievers(indexDir: string, base: string | undefined, tuned: string | undefined, device: Device) {
  const manifest = await WorkspaceIndex.readManifest(indexDir);
  const baseModel = base ?? manifest?.encoder?.model;
  if (!manifest?.encoder || !baseModel) throw new Error(`the index at ${indexDir} has no vectors: run index with --model first`);
  const open = async (name: string, model: string): Promise<Retriever> => ({
    name,
    model,
    encoder: await loadEncoder({ model, device, precision: retrieverPrecision(model, manifest.encoder) }),
    abstention: await AbstentionHead.load(model),
  });
  const retrievers = [await open('base', baseModel)];
  if (tuned) retrievers.push(await open('tuned', tuned));
  const index = await WorkspaceIndex.open(indexDir, { encoder: retrievers[0].encoder, encoderSpec: baseModel, readOnly: true });
  return { index, retrievers };
}

function formatReport(r: EvalReport): string {
  const f = (x: number | undefined) => (x === undefined ? '     -' : x.toFixed(3).padStart(6));
  const hasContains = r.retrievers.some((s) => s.contains);
  const lines = [
    `${r.queries} held-out queries; gold = best passage by the LM teacher${hasContains ? ' | passages containing a line of y' : ''}`,
    `${'retriever'.padEnd(14)} nDCG@${r.k} recall@${r.k}    MRR${hasContains ? `   | nDCG@${r.k} recall@${r.k}    MRR` : ''}   bits/byte`,
    `${'no retrieval'.padEnd(14)} ${'      '} ${'        '} ${'      '}${hasContains ? `   | ${'       '} ${'         '}${'      '}` : ''}   ${f(r.noRetrievalBitsPerByte)}`,
  ];
  for (const s of r.retrievers) {
    lines.push(
      `${s.name.padEnd(14)} ${f(s.teacher.ndcg)}   ${f(s.teacher.recall)} ${f(s.teacher.mrr)}` +
        (hasContains ? `   | ${f(s.contains?.ndcg)}   ${f(s.contains?.recall)} ${f(s.contains?.mrr)}` : '') +
        `   ${f(s.bitsPerByte)}`,
    );
  }
  lines.push(...ndcgGainLines(r), ...abstentionLines(r));
  const contains = r.retrievers.find((s) => s.contains)?.contains;
  if (contains) lines.push(`(content gold exists for ${contains.queries} of ${r.queries} queries)`);
  return `${lines.join('\n')}\n`;
}
