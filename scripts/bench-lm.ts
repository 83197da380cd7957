// Scoring throughput against the local stories260K server (`serve-lm` in its own process, so client and server
// do not share an event loop), at several concurrency levels and batch sizes. Prints pairs/s, requests/s,
// prompt tokens/s, and the client's CPU time as a share of wall time (the rest is waiting for the server).
//   node --import tsx scripts/bench-lm.ts [--pairs 96]
import { existsSync } from 'node:fs';
import path from 'node:path';
import { launchLm } from '../sidecar/lm/launcher';
import { LmScorer, type ScorePair } from '../sidecar/lm/scorer';

const root = path.resolve(__dirname, '..');
const modelDir = path.resolve(root, '..', 'shared', 'models', 'stories260K');
const pairsArg = process.argv.indexOf('--pairs');
const PAIRS = pairsArg >= 0 ? Number(process.argv[pairsArg + 1]) : 96;

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

async function main(): Promise<void> {
  if (!existsSync(path.join(modelDir, 'stories260K.bin'))) throw new Error(`stories260K not found in ${modelDir}`);
  const lm = await launchLm({
    command: [process.execPath, '--import', 'tsx', path.join(root, 'sidecar', 'cli', 'main.ts'), 'serve-lm', '--model', path.join(modelDir, 'stories260K.bin'), '--tokenizer', path.join(modelDir, 'tok512.bin'), '--port', '{port}'],
    readyTimeoutMs: 60_000,
  });
  try {
    // Warm up the server's JIT and the probe before timing.
    await new LmScorer({ baseUrl: lm.baseUrl, model: 'stories260K', cacheSize: 0 }).score(makePairs(16, 'warm'));
    console.log(`pairs per run: ${PAIRS}; server: serve-lm stories260K (separate process); client cache off`);
    console.log('concurrency  batch  pairs/s  requests/s  prompt-tok/s  client-CPU/wall');
    for (const batchSize of [1, 8]) {
      for (const concurrency of [1, 4, 16]) {
        const scorer = new LmScorer({ baseUrl: lm.baseUrl, model: 'stories260K', concurrency, batchSize, cacheSize: 0 });
        await scorer.capabilities();
        const pairs = makePairs(PAIRS, `c${concurrency}b${batchSize}`);
        const cpu = process.cpuUsage();
        const start = performance.now();
        await scorer.score(pairs);
        const wallMs = performance.now() - start;
        const used = process.cpuUsage(cpu);
        const stats = scorer.stats();
        const cells = [
          String(concurrency).padStart(11),
          String(batchSize).padStart(6),
          (PAIRS / (wallMs / 1000)).toFixed(1).padStart(8),
          stats.completionRequestsPerSecond.toFixed(1).padStart(11),
          stats.tokensPerSecond.toFixed(0).padStart(13),
          `${(((used.user + used.system) / 1000 / wallMs) * 100).toFixed(1)}%`.padStart(16),
        ];
        console.log(cells.join(' '));
      }
    }
  } finally {
    await lm.stop();
  }
}

main().catch((err) => {
  console.error(err instanceof Error ? err.message : err);
  process.exit(1);
});
