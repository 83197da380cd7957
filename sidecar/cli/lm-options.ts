import { Option, type Command } from 'commander';
import type { TokenBudgets } from '../lm/budgets';
import { LmScorer, type LmScorerOptions } from '../lm/scorer';
import { nonNegativeInt, positiveInt } from './option-parsers';

export interface LmCliOptions {
  lmUrl?: string;
  lmModel?: string;
  lmApiKey?: string;
  separator: string;
  docTokens?: number;
  contextTokens?: number;
  continuationTokens?: number;
  timeoutMs: number;
  lmConcurrency: number;
  lmBatch: number;
}

/** The LM teacher's endpoint and budgets, shared by score, train and eval. Environment variables give defaults. */
export function addLmOptions(cmd: Command): Command {
  return cmd
    .addOption(new Option('--lm-url <url>', 'OpenAI-compatible base URL, e.g. http://127.0.0.1:8000/v1 (required)').env('REPLUG_LM_URL'))
    .addOption(new Option('--lm-model <name>', 'served model name, as GET /v1/models lists it (required)').env('REPLUG_LM_MODEL'))
    .addOption(new Option('--lm-api-key <key>', 'API key, if the server wants one; sent to --lm-url only').env('REPLUG_LM_API_KEY'))
    .option('--separator <text>', 'put between passage and context', '\n')
    .option('--doc-tokens <n>', 'passage budget in LM tokens, keeps its start (default: 128, smaller when the LM\'s context needs it)', nonNegativeInt)
    .option('--context-tokens <n>', 'context budget in LM tokens, keeps its end (default: 128, smaller when the LM\'s context needs it)', nonNegativeInt)
    .option('--continuation-tokens <n>', 'continuation budget in LM tokens; longer continuations are shortened by whole lines (default: 128, smaller when needed)', nonNegativeInt)
    .option('--timeout-ms <n>', 'per-request timeout', positiveInt, 60_000)
    .option('--lm-concurrency <n>', 'LM requests in flight', positiveInt, 8)
    .option('--lm-batch <n>', 'prompts per completions request', positiveInt, 8);
}

/** The endpoint and model, or an error that says both ways of giving them. */
export function requireLm(opts: LmCliOptions): { lmUrl: string; lmModel: string } {
  if (!opts.lmUrl) throw new Error('no LM endpoint: pass --lm-url (e.g. http://127.0.0.1:8000/v1) or set $REPLUG_LM_URL');
  if (!opts.lmModel) throw new Error('no LM model: pass --lm-model (a name GET /v1/models lists) or set $REPLUG_LM_MODEL');
  return { lmUrl: opts.lmUrl, lmModel: opts.lmModel };
}

/** The budgets the user set on the command line; unset ones are sized to the LM by the scorer. */
export function requestedBudgets(opts: LmCliOptions): Partial<TokenBudgets> {
  return { doc: opts.docTokens, context: opts.contextTokens, continuation: opts.continuationTokens };
}

export function scorerFromOptions(opts: LmCliOptions, overrides: Partial<LmScorerOptions> = {}): LmScorer {
  const { lmUrl, lmModel } = requireLm(opts);
  return new LmScorer({
    baseUrl: lmUrl,
    model: lmModel,
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
