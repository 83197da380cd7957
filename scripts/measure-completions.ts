// REPLUG completions measured on held-out points of a real code corpus (execa's and mocha's sources, as the learning
// test uses them), against the repo's test teachers, in one run on the same prompts:
// 1. bits/byte of the true continuation under none, concat and replug (token-level mixture, as decoding mixes), for
//    the base retriever (a random tiny BERT) and one tuned on this workspace with `train` (learning-test settings);
// 2. exact match and edit similarity of greedy next-line completions (RepoEval's line-completion metrics);
// 3. what top-N log-probs cost: bits/byte of the ensemble rebuilt from each passage's top-N (copy-LM), and on
//    stories260K (a real LM, 512 tokens, so the exact mixture is known) also how often the greedy choice changes.
//   node --import tsx scripts/measure-completions.ts [--work DIR] [--points 120] [--k 4] [--topn-points 40] [--stories-points 40]
// The work folder keeps the tiny BERT, the index and the tuned model between runs.
import { existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { loadEncoder } from '../sidecar/encoder/ort-encoder';
import { bitsPerByte, logSoftmax, logSumExp, tokenEnsembleLogProb } from '../sidecar/eval/ensemble';
import { editSimilarity, exactMatch } from '../sidecar/eval/line-completion';
import { pairedDifference } from '../sidecar/eval/ranking-metrics';
import { Generator, type CompletionMode, type CompletionPlan } from '../sidecar/generate/generator';
import { chooseToken, mixCandidates, mixtureLogProb, type PassageTop, type TailPolicy } from '../sidecar/generate/mixture';
import { indexRetriever } from '../sidecar/generate/retrieval';
import { WorkspaceIndex } from '../sidecar/index/workspace-index';
import { launchLm, type LaunchedLm } from '../sidecar/lm/launcher';
import { LmScorer } from '../sidecar/lm/scorer';
import { continuationStartByIds } from '../sidecar/lm/span';
import { DEFAULT_LSR_SETTINGS, trainLsr } from '../sidecar/lsr/lsr-trainer';
import { DEFAULT_QUERY_SOURCE, loadQueries } from '../sidecar/lsr/query-source';
import { seededRandom, type TrainingQuery } from '../sidecar/lsr/training-queries';
import { launchStoriesServer, needsStories } from '../test/fixtures/lm/stories';
import { makeTinyBert } from './make-tiny-bert';

const root = path.resolve(__dirname, '..');
const CORPUS = ['execa/lib', 'mocha/lib'].map((p) => path.join(root, 'node_modules', p));
const COPY_VOCAB = 16384;
const STORIES_VOCAB = 512;
/** As the learning test's evaluation. */
const GAMMA = 0.05;
const TOP_NS = [1, 5, 20];
const TAILS: TailPolicy[] = ['floor', 'zero'];
/** Copy-LM tokens of a next-line completion (RepoEval scores the first line; the rest is cut). */
const LINE_TOKENS = 32;

const { values: args } = parseArgs({
  options: {
    work: { type: 'string', default: path.join(os.tmpdir(), 'replug-measure-completions') },
    points: { type: 'string', default: '120' },
    k: { type: 'string', default: '4' },
    'topn-points': { type: 'string', default: '40' },
    'stories-points': { type: 'string', default: '40' },
  },
});
const K = Number(args.k);

type Json = Record<string, unknown>;

async function main(): Promise<void> {
  const work = args.work!;
  const tiny = await makeTinyBertOnce(path.join(work, 'tiny'));
  const indexDir = path.join(work, 'index');
  const base = await loadEncoder({ model: tiny });
  if (!existsSync(path.join(indexDir, 'CURRENT'))) {
    const writer = await WorkspaceIndex.open(indexDir, { encoder: base, encoderSpec: tiny });
    await writer.update(CORPUS);
    await writer.close();
  }
  const copy = await launchLm({ command: [process.execPath, '--import', 'tsx', path.join(root, 'test/fixtures/lm/serve-copy-lm.ts'), '--port', '{port}', '--vocab', String(COPY_VOCAB)], readyTimeoutMs: 60_000 });
  let stories: LaunchedLm | undefined;
  try {
    const scorer = new LmScorer({ baseUrl: copy.baseUrl, model: 'copy-lm', docTokens: K * 130, continuationTokens: 512 });
    const index = await WorkspaceIndex.open(indexDir, { encoder: base, encoderSpec: tiny, readOnly: true });
    const source = { ...DEFAULT_QUERY_SOURCE, perFile: 10, trainFraction: 0.7, evalFraction: 0.3 };
    const tuned = path.join(work, 'tuned');
    if (!existsSync(path.join(tuned, 'replug-training.json'))) {
      log('training the tuned retriever (learning-test settings, 400 steps)…');
      const train = await loadQueries(index.passages(), { ...source, split: 'train' });
      await trainLsr({
        indexDir, model: tiny, output: tuned, scorer, queries: train,
        settings: { ...DEFAULT_LSR_SETTINGS, gamma: 0.05, lr: 3e-3, steps: 400, batchSize: 8, k: 10, checkpointEvery: 1000, freezeWordEmbeddings: false },
      });
    }
    const tunedEncoder = await loadEncoder({ model: tuned });
    const tunedIndex = await WorkspaceIndex.open(indexDir, { encoder: base, queryEncoder: tunedEncoder, encoderSpec: tiny, readOnly: true });
    const heldOut = await loadQueries(index.passages(), { ...source, split: 'eval-points' });
    const points = sample(heldOut, Number(args.points));
    const generators = {
      base: new Generator({ baseUrl: copy.baseUrl, model: 'copy-lm', gamma: GAMMA, retriever: indexRetriever(() => index) }),
      tuned: new Generator({ baseUrl: copy.baseUrl, model: 'copy-lm', gamma: GAMMA, retriever: indexRetriever(() => tunedIndex) }),
    };
    const configs: { name: string; mode: CompletionMode; generator: Generator }[] = [
      { name: 'none', mode: 'none', generator: generators.base },
      { name: 'concat base', mode: 'concat', generator: generators.base },
      { name: 'concat tuned', mode: 'concat', generator: generators.tuned },
      { name: 'replug base', mode: 'replug', generator: generators.base },
      { name: 'replug tuned', mode: 'replug', generator: generators.tuned },
    ];
    // Per point, so that differences between configurations come with paired standard errors.
    const totals = configs.map(() => ({ logProb: 0, sequenceLogProb: 0, em: [] as number[], es: [] as number[], bits: [] as number[], seconds: 0 }));
    const topN = new Map<string, number>(); // `${N} ${tail}` -> summed log-prob, over the first topn-points points
    let exactTopNLogProb = 0;
    let bytes = 0;
    let topNBytes = 0;
    let skipped = 0;
    const topNPoints = Math.min(points.length, Number(args['topn-points']));

    for (let i = 0; i < points.length; i++) {
      const q = points[i];
      const plans = await Promise.all(configs.map((c) => c.generator.plan({ prompt: q.context, mode: c.mode, k: K, maxTokens: 1, source: { path: q.path } })));
      const scores = await Promise.all(plans.map((plan) => scorer.score(scorePairs(plan, q))));
      if (scores.some((s) => s.some((p) => p.perToken!.length !== s[0].perToken!.length))) {
        skipped++; // y tokenized differently after some passage: no token-level mixture for this point
        continue;
      }
      bytes += Buffer.byteLength(q.continuation, 'utf8');
      plans.forEach((plan, c) => {
        const sims = plan.passages.length ? plan.passages.map((p) => p.similarity) : [0];
        const logProb = tokenEnsembleLogProb(scores[c].map((s) => s.perToken!), configs[c].mode === 'replug' ? sims : [0], GAMMA);
        totals[c].logProb += logProb;
        totals[c].bits.push(bitsPerByte(logProb, Buffer.byteLength(q.continuation, 'utf8')));
        totals[c].sequenceLogProb += configs[c].mode === 'replug' ? logSumExp(scores[c].map((s, d) => s.logProb + Math.log(plan.passages[d].weight))) : scores[c][0].logProb;
      });
      const target = q.continuation.split('\n').find((l) => l.trim() !== '') ?? '';
      for (let c = 0; c < configs.length; c++) {
        const t0 = performance.now();
        const line = await nextLine(configs[c].generator, configs[c].mode, q);
        totals[c].seconds += (performance.now() - t0) / 1000;
        totals[c].em.push(exactMatch(target, line));
        totals[c].es.push(editSimilarity(target, line));
      }
      if (i < topNPoints) {
        const replugBase = plans[3];
        const { tops, exact } = await teacherForcedTops(generators.base, replugBase, q.continuation, Math.max(...TOP_NS));
        const logWeights = replugBase.passages.map((p) => Math.log(p.weight));
        exactTopNLogProb += tokenEnsembleLogProb(exact.values, replugBase.passages.map((p) => p.similarity), GAMMA);
        topNBytes += Buffer.byteLength(q.continuation, 'utf8');
        for (const n of TOP_NS) {
          for (const tail of TAILS) {
            let sum = 0;
            exact.keys.forEach((key, t) => {
              sum += mixtureLogProb(tops.map((perPos, d) => ({ logWeight: logWeights[d], top: firstN(perPos[t], n) })), tail, key, COPY_VOCAB);
            });
            topN.set(`${n} ${tail}`, (topN.get(`${n} ${tail}`) ?? 0) + sum);
          }
        }
      }
      if ((i + 1) % 10 === 0) log(`${i + 1}/${points.length} points`);
    }

    const n = points.length - skipped;
    console.log(`\n${n} held-out points (eval-points of ${CORPUS.map((c) => path.relative(root, c)).join(' + ')}; ${skipped} skipped), k = ${K}, γ = ${GAMMA}, copy-LM (V = ${COPY_VOCAB})`);
    console.log('config          bits/byte  (sequence-level)   EM      ES     s/line');
    const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
    configs.forEach((c, i) => {
      const t = totals[i];
      console.log(`${c.name.padEnd(15)} ${bitsPerByte(t.logProb, bytes).toFixed(4).padStart(9)}  ${`(${bitsPerByte(t.sequenceLogProb, bytes).toFixed(4)})`.padStart(16)}   ${mean(t.em).toFixed(3)}  ${mean(t.es).toFixed(3)}  ${(t.seconds / n).toFixed(2).padStart(6)}`);
    });
    console.log('paired differences over the same points (mean ± standard error): per-point bits/byte, EM, ES');
    const pairs: [number, number][] = [[3, 0], [3, 1], [4, 2], [4, 3]];
    for (const [a, b] of pairs) {
      const cells = (['bits', 'em', 'es'] as const).map((m) => {
        const d = pairedDifference(totals[a][m], totals[b][m]);
        return `${m === 'bits' ? 'bits/byte' : m.toUpperCase()} ${d.mean >= 0 ? '+' : '−'}${Math.abs(d.mean).toFixed(3)} ± ${d.stdErr.toFixed(3)}`;
      });
      console.log(`  ${`${configs[a].name} − ${configs[b].name}`.padEnd(28)} ${cells.join('   ')}`);
    }
    console.log(`\ntop-N log-probs, replug base, first ${topNPoints} points: bits/byte of y rebuilt from each passage's top-N (exact ${bitsPerByte(exactTopNLogProb, topNBytes).toFixed(4)})`);
    for (const nn of TOP_NS) console.log(`  N = ${String(nn).padStart(2)}: ${TAILS.map((tail) => `${tail} ${bpb(topN.get(`${nn} ${tail}`)!, topNBytes)}`).join('   ')}`);

    if (!needsStories.skip) {
      stories = await launchStoriesServer();
      await measureStories(stories.baseUrl, index, points.slice(0, Number(args['stories-points'])));
    } else console.log(`\nstories260K part skipped: ${needsStories.skip}`);
    await index.close();
    await tunedIndex.close();
    await base.dispose();
    await tunedEncoder.dispose();
  } finally {
    await copy.stop();
    await stories?.stop();
  }
}

/** The scorer's (doc, context, continuation) pairs for a plan's prompts; none: an empty doc (its prompt is "\n" ⊕ x). */
function scorePairs(plan: CompletionPlan, q: TrainingQuery) {
  const docs = plan.docs.length ? plan.docs : [''];
  return docs.map((doc) => ({ doc, context: plan.context, continuation: q.continuation }));
}

/**
 * The greedy completion's next line: the first non-blank line after the prompt's last line. The prompt ends
 * without x's trailing whitespace: the copy-LM's tokens carry the whitespace before them, so a prompt ending in a
 * newline would end in a lone whitespace token that no indexed text has; the model writes the newline (and the
 * indentation) with the next line's first token, like the text it copies.
 */
async function nextLine(generator: Generator, mode: CompletionMode, q: TrainingQuery): Promise<string> {
  const abort = new AbortController();
  let text = '';
  const line = () => text.slice(text.indexOf('\n') + 1).split('\n').find((l) => l.trim() !== '') ?? '';
  const done = () => text.includes('\n') && /\S[^\n]*\n/.test(text.slice(text.indexOf('\n') + 1));
  try {
    const result = await generator.complete(
      { prompt: q.context.trimEnd(), mode, k: K, maxTokens: LINE_TOKENS, source: { path: q.path } },
      { signal: abort.signal, onText: (delta) => ((text += delta), done() && abort.abort()) },
    );
    text = result.text;
  } catch (err) {
    if (!abort.signal.aborted) throw err;
  }
  return text.includes('\n') ? line() : '';
}

/**
 * Teacher-forced top-N of each replug prompt at every token of y (one echo request per passage), and y's token keys
 * with each passage's exact log-probs of them.
 */
async function teacherForcedTops(generator: Generator, plan: CompletionPlan, y: string, n: number) {
  const { baseUrl, model } = generator.upstream;
  const separator = generator.promptSeparator;
  const root = baseUrl.replace(/\/v1$/, '');
  const post = async (url: string, body: Json) => {
    const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    if (!res.ok) throw new Error(`${url}: ${res.status} ${await res.text()}`);
    return (await res.json()) as Json;
  };
  const tokenize = async (text: string) => (await post(`${root}/tokenize`, { model, prompt: text, add_special_tokens: true })).tokens as number[];
  const tops: Map<string, number>[][] = [];
  const values: number[][] = [];
  let keys: string[] = [];
  for (const doc of plan.docs) {
    const prefix = doc + separator + plan.context;
    const [prefixIds, ids] = await Promise.all([tokenize(prefix), tokenize(prefix + y)]);
    const start = continuationStartByIds(prefixIds, ids);
    const body = await post(`${baseUrl}/completions`, { model, prompt: ids, echo: true, max_tokens: 0, logprobs: n, temperature: 0, return_tokens_as_token_ids: true });
    const lp = (body.choices as Json[])[0].logprobs as { top_logprobs: Record<string, number>[]; token_logprobs: number[] };
    tops.push(lp.top_logprobs.slice(start, ids.length).map((entries) => new Map(Object.entries(entries))));
    values.push(lp.token_logprobs.slice(start, ids.length));
    keys = ids.slice(start).map((id) => `token_id:${id}`);
  }
  return { tops, exact: { keys, values } };
}

/** The n likeliest entries of a top list (an echo adds the actual token to the top-N when it is not in it). */
function firstN(entries: ReadonlyMap<string, number>, n: number): Map<string, number> {
  return new Map([...entries].sort((a, b) => b[1] - a[1]).slice(0, n));
}

/**
 * stories260K: a real LM with 512 tokens, asked for all of them, so the exact mixture is known. For the first line
 * of y (teacher-forced), the bits/byte of y and how often the greedy choice differs, with each passage's top-N.
 */
async function measureStories(baseUrl: string, index: WorkspaceIndex, points: TrainingQuery[]): Promise<void> {
  // Its context is 512 tokens and code costs it about one token per character: small budgets.
  const generator = new Generator({ baseUrl, model: 'stories260K', gamma: GAMMA, docTokens: 64, contextTokens: 64, retriever: indexRetriever(() => index) });
  const exact = { logProb: 0, bytes: 0, positions: 0 };
  const approx = new Map<string, { logProb: number; agree: number }>();
  for (const q of points) {
    const line = q.continuation.split('\n')[0].slice(0, 60);
    if (line.trim() === '') continue;
    const plan = await generator.plan({ prompt: q.context, mode: 'replug', k: K, maxTokens: 1, source: { path: q.path } });
    const { tops, exact: ys } = await teacherForcedTops(generator, plan, line, STORIES_VOCAB);
    const logWeights = logSoftmax(plan.passages.map((p) => p.similarity / GAMMA));
    exact.bytes += Buffer.byteLength(line, 'utf8');
    ys.keys.forEach((key, t) => {
      const full: PassageTop<string>[] = tops.map((perPos, d) => ({ logWeight: logWeights[d], top: perPos[t] }));
      const exactMixed = mixCandidates(full, 'zero');
      exact.logProb += exactMixed.get(key) ?? -Infinity;
      exact.positions++;
      const best = chooseToken(exactMixed, { random: Math.random });
      for (const n of TOP_NS) {
        for (const tail of TAILS) {
          const cut = full.map((p) => ({ ...p, top: firstN(p.top, n) }));
          const entry = approx.get(`${n} ${tail}`) ?? { logProb: 0, agree: 0 };
          entry.logProb += mixtureLogProb(cut, tail, key, STORIES_VOCAB);
          entry.agree += chooseToken(mixCandidates(cut, tail), { random: Math.random }) === best ? 1 : 0;
          approx.set(`${n} ${tail}`, entry);
        }
      }
    });
  }
  console.log(`\nstories260K (V = ${STORIES_VOCAB}, all log-probs asked), replug base, ${points.length} points, first line of y, ${exact.positions} tokens: exact bits/byte ${bitsPerByte(exact.logProb, exact.bytes).toFixed(4)}`);
  for (const n of TOP_NS) {
    const cells = TAILS.map((tail) => {
      const e = approx.get(`${n} ${tail}`)!;
      return `${tail}: greedy choice as exact ${((100 * e.agree) / exact.positions).toFixed(1)}%, bits/byte ${bpb(e.logProb, exact.bytes)}`;
    });
    console.log(`  N = ${String(n).padStart(2)}  ${cells.join('   ')}`);
  }
}

async function makeTinyBertOnce(dir: string): Promise<string> {
  if (existsSync(path.join(dir, 'config.json'))) return dir;
  return makeTinyBert(dir, { layers: 2, hidden: 64, heads: 4, ffn: 128, vocab: 'real', maxPos: 256, seed: 1, noShift: true });
}

/** `count` points spread over the files (a seeded shuffle), or all of them. */
function sample(points: TrainingQuery[], count: number): TrainingQuery[] {
  const random = seededRandom('measure-completions');
  return points.map((p) => ({ p, r: random() })).sort((a, b) => a.r - b.r).slice(0, count).map((e) => e.p);
}

/** Bits per byte for printing; ∞ where a policy left the true token no probability at all. */
function bpb(logProb: number, bytes: number): string {
  const bits = bitsPerByte(logProb, bytes);
  return Number.isFinite(bits) ? bits.toFixed(4) : '∞ (no mass left for the true token)';
}

function log(line: string): void {
  process.stderr.write(`${line}\n`);
}

main().catch((err) => {
  console.error(err instanceof Error ? err.stack : err);
  process.exit(1);
});
