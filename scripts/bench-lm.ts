// Scoring throughput against the local stories260K server, side by side: `serve-lm` (the ONNX graph, batched) and
// the plain-JS reference pass it replaced, each in its own process (so client and server do not share an event
// loop), on the same pairs, at several concurrency levels and batch sizes. Prints pairs/s of both and their ratio;
// then the CPU time each server process spent per pair (all its threads; Linux) and their ratio, which the client's
// share of the machine does not blur; and the client's own CPU time per pair (LmScorer: tokenize requests, HTTP, JSON).
//   node --import tsx scripts/bench-lm.ts [--pairs 96] [--threads 1]
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { launchLm, type LaunchedLm } from '../sidecar/lm/launcher';
import { LmScorer, type ScorePair } from '../sidecar/lm/scorer';
import { LmServer } from '../sidecar/lm/serve';
import { referenceLanguageModel } from '../test/fixtures/lm/llama2c-reference';

const root = path.resolve(__dirname, '..');
const modelDir = path.resolve(root, '..', 'shared', 'models', 'stories260K');
const modelFile = path.join(modelDir, 'stories260K.bin');
const tokenizerFile = path.join(modelDir, 'tok512.bin');
const { values: args } = parseArgs({
  options: { pairs: { type: 'string', default: '96' }, threads: { type: 'string', default: '1' }, 'serve-reference': { type: 'boolean' }, port: { type: 'string' } },
});
const PAIRS = Number(args.pairs);

const NAMES = ['Lily', 'Tom', 'Sue', 'Max', 'Ben', 'Mia'];
const THINGS = ['ball', 'kite', 'cat', 'boat', 'cake', 'tree'];

/** Distinct pairs (so no cache hits) of roughly 60 + 30 + 15 tokens, in the model's storybook domain. */
function makePairs(count: number, salt: string): ScorePair[] {
  return Array.from({ length: count }, (_, i) => {
    const name = NAMES[i % NAMES.length];
    const thing = THINGS[(i * 7) % THINGS.length];
    return {
      doc: `${name} had a ${thing}. Every day ${name} played with the ${thing} in the park. One day the ${thing} was lost and ${name} was sad. A kind friend helped ${name} look for it. (${salt} ${i})`,
      context: `Once upon a time, there was a little girl named ${name}. She loved her ${thing} very much. One day,`,
      continuation: ` ${name} went to the park to play with her ${thing}.`,
    };
  });
}

/** The child process of the baseline: the reference pass behind the same HTTP server, until SIGTERM. */
async function serveReference(port: number): Promise<void> {
  const server = new LmServer(referenceLanguageModel(modelFile, tokenizerFile, 'stories260K'));
  await server.listen(port);
  process.once('SIGTERM', () => void server.close().then(() => process.exit(0)));
}

/** CPU milliseconds a process has used, all threads (utime + stime in /proc, 100 ticks a second); NaN off Linux. */
function processCpuMs(pid: number): number {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
    return (Number(fields[11]) + Number(fields[12])) * 10;
  } catch {
    return NaN;
  }
}

async function measure(lm: LaunchedLm, pairs: ScorePair[], concurrency: number, batchSize: number) {
  const scorer = new LmScorer({ baseUrl: lm.baseUrl, model: 'stories260K', concurrency, batchSize, cacheSize: 0 });
  await scorer.capabilities();
  const cpu = process.cpuUsage();
  const serverCpu = processCpuMs(lm.pid);
  const start = performance.now();
  await scorer.score(pairs);
  const wallMs = performance.now() - start;
  const used = process.cpuUsage(cpu);
  return {
    pairsPerSecond: pairs.length / (wallMs / 1000),
    serverMsPerPair: (processCpuMs(lm.pid) - serverCpu) / pairs.length,
    clientMsPerPair: (used.user + used.system) / 1000 / pairs.length,
  };
}

async function main(): Promise<void> {
  if (!existsSync(modelFile)) throw new Error(`stories260K not found in ${modelDir}`);
  const tsx = [process.execPath, '--import', 'tsx'];
  const launch = (command: string[]) => launchLm({ command: [...tsx, ...command, '--port', '{port}'], readyTimeoutMs: 60_000 });
  const reference = await launch([__filename, '--serve-reference']);
  const graph = await launch([path.join(root, 'sidecar', 'cli', 'main.ts'), 'serve-lm', '--model', modelFile, '--tokenizer', tokenizerFile, '--threads', String(args.threads)]);
  try {
    // Warm up both servers' JIT and the probe before timing.
    for (const lm of [reference, graph]) await new LmScorer({ baseUrl: lm.baseUrl, model: 'stories260K', cacheSize: 0 }).score(makePairs(16, 'warm'));
    console.log(`pairs per run: ${PAIRS}; servers: plain-JS reference pass and serve-lm (ONNX graph, ${args.threads} ORT thread(s)), each in its own process; client cache off`);
    console.log('                     pairs/s                      server CPU ms/pair          client CPU');
    console.log('concurrency  batch  reference  serve-lm   ratio  reference  serve-lm   ratio    ms/pair');
    for (const batchSize of [1, 8]) {
      for (const concurrency of [1, 4, 16]) {
        const pairs = makePairs(PAIRS, `c${concurrency}b${batchSize}`);
        const before = await measure(reference, pairs, concurrency, batchSize);
        const after = await measure(graph, pairs, concurrency, batchSize);
        const cells = [
          String(concurrency).padStart(11),
          String(batchSize).padStart(6),
          before.pairsPerSecond.toFixed(1).padStart(10),
          after.pairsPerSecond.toFixed(1).padStart(9),
          `${(after.pairsPerSecond / before.pairsPerSecond).toFixed(1)}×`.padStart(7),
          before.serverMsPerPair.toFixed(1).padStart(10),
          after.serverMsPerPair.toFixed(2).padStart(9),
          `${(before.serverMsPerPair / after.serverMsPerPair).toFixed(0)}×`.padStart(7),
          after.clientMsPerPair.toFixed(2).padStart(10),
        ];
        console.log(cells.join(' '));
      }
    }
  } finally {
    await Promise.all([reference.stop(), graph.stop()]);
  }
}

const main$ = args['serve-reference'] ? serveReference(Number(args.port)) : main();
main$.catch((err) => {
  console.error(err instanceof Error ? err.message : err);
  process.exit(1);
});
