import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { LmScorer } from '../lm/scorer';
import { nonNegativeInt } from './option-parsers';

interface ScoreOptions {
  lmUrl: string;
  lmModel: string;
  lmApiKey?: string;
  doc?: string;
  context: string;
  continuation: string;
  separator: string;
  docTokens: number;
  contextTokens: number;
  continuationTokens: number;
  timeoutMs: number;
  json?: boolean;
}

/** `score`: log P_LM(continuation | doc ⊕ separator ⊕ context) from an OpenAI-compatible server, for checking a teacher by hand. */
export function register(program: Command): void {
  program
    .command('score')
    .description("print the LM's log-likelihood of a continuation given a passage and a context (what LSR training uses)")
    .requiredOption('--lm-url <url>', 'OpenAI-compatible base URL, e.g. http://127.0.0.1:8000/v1', process.env.REPLUG_LM_URL)
    .requiredOption('--lm-model <name>', 'served model name (GET /v1/models)', process.env.REPLUG_LM_MODEL)
    .option('--lm-api-key <key>', 'API key, if the server wants one (default: $REPLUG_LM_API_KEY)', process.env.REPLUG_LM_API_KEY)
    .option('--doc <file>', 'retrieved passage put before the context (default: none)')
    .requiredOption('--context <file>', 'text before the point (the query)')
    .requiredOption('--continuation <file>', 'text to score')
    .option('--separator <text>', 'put between passage and context', '\n')
    .option('--doc-tokens <n>', 'passage token budget (keeps its start)', nonNegativeInt, 128)
    .option('--context-tokens <n>', 'context token budget (keeps its end)', nonNegativeInt, 128)
    .option('--continuation-tokens <n>', 'continuation token budget (longer is an error)', nonNegativeInt, 128)
    .option('--timeout-ms <n>', 'per-request timeout', nonNegativeInt, 60_000)
    .option('--json', 'print JSON (with per-token log-probs)')
    .action(async (opts: ScoreOptions) => {
      const read = (flag: string, file: string) => {
        try {
          return readFileSync(file, 'utf8');
        } catch (err) {
          throw new Error(`cannot read ${flag} ${file}: ${(err as Error).message}`);
        }
      };
      const pair = {
        doc: opts.doc === undefined ? '' : read('--doc', opts.doc),
        context: read('--context', opts.context),
        continuation: read('--continuation', opts.continuation),
      };
      const scorer = new LmScorer({
        baseUrl: opts.lmUrl,
        model: opts.lmModel,
        apiKey: opts.lmApiKey,
        separator: opts.separator,
        docTokens: opts.docTokens,
        contextTokens: opts.contextTokens,
        continuationTokens: opts.continuationTokens,
        timeoutMs: opts.timeoutMs,
        cacheSize: 0,
      });
      const [result] = await scorer.score([pair]);
      const mean = result.logProb / result.tokens;
      if (opts.json) {
        const server = await scorer.capabilities();
        console.log(JSON.stringify({ model: opts.lmModel, logProb: result.logProb, tokens: result.tokens, meanLogProb: mean, perToken: result.perToken, server }, null, 2));
      } else {
        console.log(`log P(continuation | doc, context) = ${result.logProb.toFixed(4)} over ${result.tokens} tokens (mean ${mean.toFixed(4)} per token, perplexity ${Math.exp(-mean).toFixed(2)})`);
      }
    });
}
