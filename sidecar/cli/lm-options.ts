import type { Command } from 'commander';
import { LmScorer, type LmScorerOptions } from '../lm/scorer';
import { nonNegativeInt, positiveInt } from './option-parsers';

export interface LmCliOptions {
  lmUrl: string;
  lmModel: string;
  lmApiKey?: string;
  separator: string;
  docTokens: number;
  contextTokens: number;
  continuationTokens: number;
  timeoutMs: number;
  lmConcurrency: number;
  lmBatch: number;
}

/** The LM teacher's endpoint and budgets, shared by score, train and eval. Environment variables give defaults. */
export function addLmOptions(cmd: Command): Command {
  return cmd
    .requiredOption('--lm-url <url>', 'OpenAI-compatible base URL, e.g. http://127.0.0.1:8000/v1 (default: $REPLUG_LM_URL)', process.env.REPLUG_LM_URL)
    .requiredOption('--lm-model <name>', 'served model name, as GET /v1/models lists it (default: $REPLUG_LM_MODEL)', process.env.REPLUG_LM_MODEL)
    .option('--lm-api-key <key>', 'API key, if the server wants one (default: $REPLUG_LM_API_KEY)', process.env.REPLUG_LM_API_KEY)
    .option('--separator <text>', 'put between passage and context', '\n')
    .option('--doc-tokens <n>', 'passage token budget (keeps its start)', nonNegativeInt, 128)
    .option('--context-tokens <n>', 'context token budget (keeps its end)', nonNegativeInt, 128)
    .option('--continuation-tokens <n>', 'continuation token budget (longer is an error, never cut)', nonNegativeInt, 128)
    .option('--timeout-ms <n>', 'per-request timeout', nonNegativeInt, 60_000)
    .option('--lm-concurrency <n>', 'LM requests in flight', positiveInt, 8)
    .option('--lm-batch <n>', 'prompts per completions request', positiveInt, 8);
}

export function scorerFromOptions(opts: LmCliOptions, overrides: Partial<LmScorerOptions> = {}): LmScorer {
  return new LmScorer({
    baseUrl: opts.lmUrl,
    model: opts.lmModel,
    apiKey: opts.lmApiKey,
    separator: opts.separator,
    docTokens: opts.docTokens,
    contextTokens: opts.contextTokens,
    continuationTokens: opts.continuationTokens,
    timeoutMs: opts.timeoutMs,
    concurrency: opts.lmConcurrency,
    batchSize: opts.lmBatch,
    ...overrides,
  });
}
