import { Option, type Command } from 'commander';
import { COMPLETION_MODES, DEFAULT_TOP_LOGPROBS, Generator, type CompletionMode } from '../generate/generator';
import type { TailPolicy } from '../generate/mixture';
import { indexRetriever } from '../generate/retrieval';
import { DEFAULT_LSR_SETTINGS } from '../lsr/lsr-trainer';
import { addIndexDirOption } from './index-dir';
import { addLmOptions, requireLm, type LmCliOptions } from './lm-options';
import { addModelOptions, type ModelCliOptions } from './model-options';
import { nonNegativeInt, positiveInt, positiveNumber } from './option-parsers';
import { openQueryIndex, type QueryIndex } from './query-index';

export interface GenerateCliOptions extends LmCliOptions, ModelCliOptions {
  indexDir: string;
  mode: CompletionMode;
  k: number;
  maxTokens: number;
  topLogprobs: number;
  tail: TailPolicy;
  gamma: number;
}

/** Passages per REPLUG step by default: each one costs a request per generated token. */
export const DEFAULT_COMPLETION_K = 4;

/** The options `complete` and `serve` share: mode, k, token budgets, the ensemble's N and γ, index, encoder and LM. */
export function addGenerateOptions(cmd: Command, maxTokens: number): Command {
  cmd
    .addOption(new Option('--mode <mode>', 'replug: one prompt per passage, mixed; concat: passages in one prompt; none: no retrieval').choices(COMPLETION_MODES).default('replug'))
    .option('-k, --k <n>', 'passages retrieved (replug: prompts per generated token)', nonNegativeInt, DEFAULT_COMPLETION_K)
    .option('--max-tokens <n>', 'most tokens to generate', positiveInt, maxTokens)
    .option('--top-logprobs <n>', 'top log-probs asked per passage and token (vLLM allows 20 unless started with --max-logprobs)', positiveInt, DEFAULT_TOP_LOGPROBS)
    .addOption(new Option('--tail <policy>', "credit of a token outside a passage's top-N: floor (the passage's leftover mass, capped at its N-th probability) or zero").choices(['floor', 'zero']).default('floor'))
    .option('--gamma <t>', 'temperature of the passage weights softmax(similarity/γ)', positiveNumber, DEFAULT_LSR_SETTINGS.gamma);
  addIndexDirOption(cmd);
  addModelOptions(cmd);
  addLmOptions(cmd);
  // Shared LM options that only scoring uses.
  for (const flag of ['--continuation-tokens', '--lm-batch']) cmd.options.find((o) => o.long === flag)?.hideHelp();
  return cmd;
}

/** The index (when the mode retrieves) and a generator over it. */
export async function generatorFromOptions(opts: GenerateCliOptions, overrides: { retries?: number } = {}): Promise<{ generator: Generator; index?: QueryIndex }> {
  const index = opts.mode === 'none' ? undefined : await openQueryIndex(opts.indexDir, opts).catch((err: Error) => {
    throw new Error(`${err.message} (mode ${opts.mode} retrieves from it; --mode none needs no index)`);
  });
  const { lmUrl, lmModel } = requireLm(opts);
  const generator = new Generator({
    baseUrl: lmUrl,
    model: lmModel,
    apiKey: opts.lmApiKey,
    retriever: index && indexRetriever(() => index.index),
    separator: opts.separator,
    docTokens: opts.docTokens,
    contextTokens: opts.contextTokens,
    topLogprobs: opts.topLogprobs,
    tail: opts.tail,
    gamma: opts.gamma,
    concurrency: opts.lmConcurrency,
    timeoutMs: opts.timeoutMs,
    ...overrides,
  });
  return { generator, index };
}
