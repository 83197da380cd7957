// Completion cost per mode, side by side in one run on the same prompts: latency per completed token and LM requests
// per token, for none (the LM alone, one generation request), concat and replug at k = 2, 4, 8, against the copy-LM
// and (when present) stories260K, each served in its own process. The ratio column is against none on the same
// server. The test servers have no KV cache (each request re-reads its whole prompt), unlike vLLM with prefix
// caching, so the ratios here are upper bounds of what the extra requests cost.
//   node --import tsx scripts/bench-complete.ts [--prompts 6] [--tokens 16] [--stories-prompts 2] [--stories-tokens 8]
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { Generator, type CompletionMode } from '../sidecar/generate/generator';
import { indexRetriever } from '../sidecar/generate/retrieval';
import { WorkspaceIndex } from '../sidecar/index/workspace-index';
import { launchLm, type LaunchedLm } from '../sidecar/lm/launcher';
import { estimateTokens } from '../sidecar/corpus/chunk';
import { queriesFromFiles, type TrainingQuery } from '../sidecar/lsr/training-queries';
import { readFile } from 'node:fs/promises';
import { launchStoriesServer, needsStories } from '../test/fixtures/lm/stories';

const root = path.resolve(__dirname, '..');
const { values: args } = parseArgs({
  options: {
    prompts: { type: 'string', default: '6' },
    tokens: { type: 'string', default: '16' },
    'stories-prompts': { type: 'string', default: '2' },
    'stories-tokens': { type: 'string', default: '8' },
  },
});

const CONFIGS: { mode: CompletionMode; k: number }[] = [
  { mode: 'none', k: 0 },
  { mode: 'concat', k: 4 },
  { mode: 'replug', k: 2 },
  { mode: 'replug', k: 4 },
  { mode: 'replug', k: 8 },
];

async function main(): Promise<void> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'replug-bench-complete-'));
  const servers: LaunchedLm[] = [];
  try {
    // The corpus: this project's engine source, lexical (the retriever's cost is not what is measured here).
    const index = await WorkspaceIndex.open(path.join(dir, 'index'));
    await index.update([path.join(root, 'sidecar')]);
    const files = [...new Set(index.passages().map((p) => p.path))].sort();
    const texts = await Promise.all(files.map(async (f) => ({ path: f, text: await readFile(f, 'utf8') })));
    const points = queriesFromFiles(texts, 1, 7, { contextTokens: 128, continuationTokens: 32, countTokens: estimateTokens });

    const copy = await launchLm({ command: [process.execPath, '--import', 'tsx', path.join(root, 'test/fixtures/lm/serve-copy-lm.ts'), '--port', '{port}', '--vocab', '8192'], readyTimeoutMs: 60_000 });
    servers.push(copy);
    await run('copy-lm', copy.baseUrl, index, points.slice(0, Number(args.prompts)), Number(args.tokens), {});
    if (needsStories.skip) console.log(`stories260K skipped: ${needsStories.skip}`);
    else {
      const stories = await launchStoriesServer();
      servers.push(stories);
      // Code costs stories260K about a token per character; its context is 512 tokens.
      await run('stories260K', stories.baseUrl, index, points.slice(0, Number(args['stories-prompts'])), Number(args['stories-tokens']), { docTokens: 64, contextTokens: 64 });
    }
    await index.close();
  } finally {
    for (const s of servers) await s.stop();
    await rm(dir, { recursive: true, force: true });
  }
}

async function run(model: string, baseUrl: string, index: WorkspaceIndex, points: TrainingQuery[], tokens: number, budgets: { docTokens?: number; contextTokens?: number }): Promise<void> {
  const generator = new Generator({ baseUrl, model, retriever: indexRetriever(() => index), ...budgets });
  // Warm up: the probe, the server's JIT, the token caches of these prompts.
  for (const q of points) await generator.complete({ prompt: q.context, mode: 'replug', k: 8, maxTokens: 1, source: { path: q.path } });
  console.log(`\n${model}: ${points.length} prompts × ${tokens} tokens, greedy, no stop sequence`);
  console.log('mode     k   ms/token   ×none   requests/token');
  let noneMs = 0;
  for (const { mode, k } of CONFIGS) {
    let ms = 0;
    let produced = 0;
    let requests = 0;
    for (const q of points) {
      const t0 = performance.now();
      const result = await generator.complete({ prompt: q.context, mode, k, maxTokens: tokens, source: { path: q.path } });
      ms += performance.now() - t0;
      produced += result.completionTokens;
      requests += result.requests;
    }
    const perToken = ms / produced;
    if (mode === 'none') noneMs = perToken;
    console.log(`${mode.padEnd(8)} ${String(k).padStart(1)} ${perToken.toFixed(1).padStart(10)} ${(perToken / noneMs).toFixed(2).padStart(7)} ${(requests / produced).toFixed(2).padStart(16)}`);
  }
}

main().catch((err) => {
  console.error(err instanceof Error ? err.stack : err);
  process.exit(1);
});
