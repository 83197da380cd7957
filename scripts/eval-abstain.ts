/**
 * Does LSR with an empty passage among the candidates (train --abstain) learn when not to retrieve? The setup of
 * test/lsr-learning.test.ts: execa's and mocha's sources, a random tiny BERT whose word embeddings learn, and the
 * copy-LM teacher, under which a passage helps y by holding y's tokens in order, so some queries have no passage
 * that helps. Per split seed, two runs from the same start on the same training queries, plain LSR and LSR with
 * abstention, are evaluated on held-out points (other points of the training files). Printed: training loss, the
 * held-out loss KL(Q ‖ P_R) over the top 10, teacher-gold nDCG@10 and REPLUG bits/byte (the abstaining model with
 * and without ∅ in its ensemble, and with no passage at all where it abstains, as the editor does), with paired
 * standard errors; how often the abstaining model abstains on the queries where no passage of the pool helps the LM
 * against those where one does; and the bound on what abstaining could gain (per point, the better of plain LSR's
 * ensemble and no passage).
 * `--teacher stories` scores with stories260K behind serve-lm instead: a story model on which the base retriever's
 * passages gain nothing over the context alone (use fewer --steps and --max-points: its scoring is slower).
 *   node --import tsx scripts/eval-abstain.ts [--teacher copy|stories] [--seeds 0,1,2] [--steps 400] [--max-points N] [--abstain-lr 0.01]
 */
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { makeTinyBert } from './make-tiny-bert';
import { loadEncoder } from '../sidecar/encoder/ort-encoder';
import { evaluateRetrievers, type QueryOutcome } from '../sidecar/eval/evaluate';
import { pairedDifference } from '../sidecar/eval/ranking-metrics';
import { WorkspaceIndex } from '../sidecar/index/workspace-index';
import { LmScorer } from '../sidecar/lm/scorer';
import { LmServer } from '../sidecar/lm/serve';
import { readyTeacher } from '../sidecar/lsr/fit-queries';
import { DEFAULT_LSR_SETTINGS, trainLsr, type LsrSettings } from '../sidecar/lsr/lsr-trainer';
import { DEFAULT_QUERY_SOURCE, loadQueries } from '../sidecar/lsr/query-source';
import { AbstentionHead } from '../sidecar/retrieve/abstention';
import { CopyLm } from '../test/fixtures/lm/copy-lm';
import { launchStoriesServer, needsStories } from '../test/fixtures/lm/stories';
import { buildDenseIndex } from '../test/helpers/dense-index';

const CORPUS = ['execa/lib', 'mocha/lib'].map((p) => path.resolve(__dirname, '..', 'node_modules', p));
const K = 10;
const GAMMA = 0.05;

const { values: args } = parseArgs({
  options: {
    teacher: { type: 'string', default: 'copy' },
    seeds: { type: 'string', default: '0' },
    steps: { type: 'string', default: '400' },
    'max-points': { type: 'string' },
    'abstain-lr': { type: 'string', default: String(DEFAULT_LSR_SETTINGS.abstainLr) },
  },
});

/** The LM teacher named by --teacher, served for this run. */
async function startTeacher(name: string): Promise<{ scorer: LmScorer; stop(): Promise<void> }> {
  if (name === 'copy') {
    const server = new LmServer(new CopyLm('copy-lm', 16384));
    return { scorer: new LmScorer({ baseUrl: await server.listen(0), model: 'copy-lm', continuationTokens: 512 }), stop: () => server.close() };
  }
  if (name === 'stories') {
    if (needsStories.skip) throw new Error(needsStories.skip);
    const lm = await launchStoriesServer();
    return { scorer: new LmScorer({ baseUrl: lm.baseUrl, model: lm.models[0] }), stop: () => lm.stop() };
  }
  throw new Error(`--teacher must be copy or stories, got ${name}`);
}

/** At most `max` of the points, spread evenly over them (they come sorted by path). */
const spread = <T>(xs: T[], max: number) => xs.filter((_, i) => i % Math.max(1, Math.ceil(xs.length / max)) === 0);

const mean = (xs: readonly number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
const signed = (x: number, digits = 3) => `${x >= 0 ? '+' : '−'}${Math.abs(x).toFixed(digits)}`;
const paired = (a: number[], b: number[], scale = 1) => {
  const d = pairedDifference(a, b);
  return `${signed(d.mean * scale)} ± ${(d.stdErr * scale).toFixed(3)}`;
};
/** A share and its binomial standard error. */
const share = (hits: number, n: number) => {
  const p = n ? hits / n : NaN;
  const se = n ? Math.sqrt((p * (1 - p)) / n) : NaN;
  return { p, se, text: n ? `${(100 * p).toFixed(1)}% ± ${(100 * se).toFixed(1)} (n = ${n})` : '– (n = 0)' };
};

async function main(): Promise<void> {
  if (!CORPUS.every(existsSync)) throw new Error(`${CORPUS.join(' or ')} is missing: run npm ci`);
  const dir = mkdtempSync(path.join(tmpdir(), 'replug-eval-abstain-'));
  const teacher = await startTeacher(args.teacher);
  const say = (line: string) => process.stderr.write(`${line}\n`);
  try {
    const model = await makeTinyBert(path.join(dir, 'tiny'), { layers: 2, hidden: 64, heads: 4, ffn: 128, vocab: 'real', maxPos: 256, seed: 1, noShift: true });
    const base = await loadEncoder({ model });
    const indexDir = path.join(dir, 'index');
    await buildDenseIndex(indexDir, base, model, CORPUS);
    const { scorer } = teacher;
    for (const seed of args.seeds.split(',').map(Number)) {
      const index = await WorkspaceIndex.open(indexDir, { encoder: base, readOnly: true });
      const source = { ...DEFAULT_QUERY_SOURCE, perFile: 10, trainFraction: 0.7, evalFraction: 0.3, seed };
      const { queries: train } = await readyTeacher(scorer, await loadQueries(index.passages(), { ...source, split: 'train' }), say);
      const points = await loadQueries(index.passages(), { ...source, split: 'eval-points' });
      const { queries: heldOut } = await readyTeacher(scorer, spread(points, Number(args['max-points'] ?? points.length)), say);
      const settings: LsrSettings = {
        ...DEFAULT_LSR_SETTINGS, gamma: GAMMA, lr: 3e-3, steps: Number(args.steps), batchSize: 8, k: K, checkpointEvery: 10_000, freezeWordEmbeddings: false, seed,
        abstainLr: Number(args['abstain-lr']),
      };
      const runs = [];
      for (const abstain of [false, true]) {
        const output = path.join(dir, `seed${seed}-${abstain ? 'abstain' : 'plain'}`);
        const losses: number[] = [];
        const started = Date.now();
        await trainLsr({ indexDir, model, output, scorer, queries: train, settings: { ...settings, abstain }, onEvent: (e) => e.type === 'step' && losses.push(e.loss) });
        process.stderr.write(`seed ${seed}: trained ${abstain ? 'with' : 'without'} abstention in ${((Date.now() - started) / 1000).toFixed(0)} s\n`);
        runs.push({ output, losses, encoder: await loadEncoder({ model: output }), abstention: await AbstentionHead.load(output) });
      }
      const [plain, abstaining] = runs;
      const outcomes: QueryOutcome[] = [];
      const report = await evaluateRetrievers({
        index,
        retrievers: [
          { name: 'base', model, encoder: base },
          { name: 'plain', model: plain.output, encoder: plain.encoder },
          { name: 'abstain', model: abstaining.output, encoder: abstaining.encoder, abstention: abstaining.abstention },
        ],
        scorer,
        queries: heldOut,
        k: K,
        ensembleK: K,
        gamma: GAMMA,
        onQuery: (o) => outcomes.push(o),
      });
      await index.close();
      for (const r of runs) await r.encoder.dispose();

      const of = (r: number) => outcomes.map((o) => o.retrievers[r]);
      const empty = of(2).map((o) => o.abstention!);
      const bitsPerByte = 1 / Math.LN2 / mean(outcomes.map((o) => o.bytes)); // per-query nats → the aggregate's bits/byte
      const nothing = outcomes.map((o, i) => ({ helps: o.retrievalHelps, ...empty[i] }));
      const [where, elsewhere] = [nothing.filter((o) => !o.helps), nothing.filter((o) => o.helps)];
      const [a, b] = [share(where.filter((o) => o.abstained).length, where.length), share(elsewhere.filter((o) => o.abstained).length, elsewhere.length)];
      const [plainR, abstainR] = [report.retrievers[1], report.retrievers[2]];
      const bits = (logProbs: number[]) => (-mean(logProbs) * bitsPerByte).toFixed(3);
      // What the editor does with an abstaining model: no passage at all where ∅ outranks every passage.
      const hard = outcomes.map((o, i) => (empty[i].abstained ? o.noRetrievalLogProb : o.retrievers[2].logProb));
      // The most abstention could gain: per point, the better of plain LSR's ensemble and no passage.
      const oracle = outcomes.map((o) => Math.max(o.noRetrievalLogProb, o.retrievers[1].logProb));
      const worse = outcomes.filter((o) => o.retrievers[1].logProb < o.noRetrievalLogProb).length;
      const lines = [
        `${args.teacher} teacher, seed ${seed}: ${train.length} training queries, ${report.queries} held-out points; ${settings.steps} steps, k ${K}, γ ${GAMMA}, abstain lr ${settings.abstainLr}`,
        `  training loss (first → last 10 steps)   plain ${mean(plain.losses.slice(0, 10)).toFixed(3)} → ${mean(plain.losses.slice(-10)).toFixed(3)}` +
          `   abstain (over k + 1) ${mean(abstaining.losses.slice(0, 10)).toFixed(3)} → ${mean(abstaining.losses.slice(-10)).toFixed(3)}; τ ends at ${abstaining.abstention!.score.toFixed(3)}`,
        `  held-out loss over the top ${K}           plain ${plainR.loss!.toFixed(3)}   abstain ${abstainR.loss!.toFixed(3)} (with ∅ ${abstainR.abstention!.loss.toFixed(3)});` +
          ` abstain − plain ${paired(of(2).map((o) => o.loss), of(1).map((o) => o.loss))}`,
        `  nDCG@${K} (teacher gold)                  base ${report.retrievers[0].teacher.ndcg.toFixed(3)}   plain ${plainR.teacher.ndcg.toFixed(3)}   abstain ${abstainR.teacher.ndcg.toFixed(3)};` +
          ` abstain − plain ${paired(of(2).map((o) => o.ndcg), of(1).map((o) => o.ndcg))}`,
        `  bits/byte                               no retrieval ${report.noRetrievalBitsPerByte.toFixed(3)}   base ${report.retrievers[0].bitsPerByte.toFixed(3)}   plain ${plainR.bitsPerByte.toFixed(3)}` +
          `   abstain ${abstainR.bitsPerByte.toFixed(3)} (with ∅ ${abstainR.abstention!.bitsPerByte.toFixed(3)})`,
        `    abstain with ∅ − plain ${paired(of(1).map((o) => o.logProb), empty.map((o) => o.logProb), bitsPerByte)};` +
          ` with ∅ − without ${paired(of(2).map((o) => o.logProb), empty.map((o) => o.logProb), bitsPerByte)}`,
        `    abstaining as the editor does (no passage where ∅ outranks them all) ${bits(hard)}; − plain ${paired(of(1).map((o) => o.logProb), hard, bitsPerByte)}`,
        `    plain's ensemble is worse than no passage on ${share(worse, outcomes.length).text}; the better of the two per point (an oracle abstainer) ${bits(oracle)}`,
        `  abstains on ${(100 * abstainR.abstention!.rate).toFixed(1)}% of held-out points; where no passage helps the LM ${a.text}, where one does ${b.text};` +
          (where.length && elsewhere.length ? ` difference ${signed(100 * (a.p - b.p), 1)} ± ${(100 * Math.hypot(a.se, b.se)).toFixed(1)} points` : ''),
        `  mean P_R(∅) where no passage helps ${mean(where.map((o) => o.weight)).toFixed(3)}, where one does ${mean(elsewhere.map((o) => o.weight)).toFixed(3)}`,
      ];
      process.stdout.write(`${lines.join('\n')}\n`);
    }
    await base.dispose();
  } finally {
    await teacher.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? err.stack : String(err)}\n`);
  process.exit(1);
});
