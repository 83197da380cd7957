import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { addLmOptions, scorerFromOptions, type LmCliOptions } from './lm-options';

interface ScoreOptions extends LmCliOptions {
  doc?: string;
  context: string;
  continuation: string;
  json?: boolean;
}

/** `score`: log P_LM(continuation | doc ⊕ separator ⊕ context) from an OpenAI-compatible server, for checking a teacher by hand. */
export function register(program: Command): void {
  const cmd = program
    .command('score')
    .description("print the LM's log-likelihood of a continuation given a passage and a context (what LSR training uses)")
    .option('--doc <file>', 'retrieved passage put before the context (default: none)')
    .requiredOption('--context <file>', 'text before the point (the query)')
    .requiredOption('--continuation <file>', 'text to score')
    .option('--json', 'print JSON (with per-token log-probs)');
  addLmOptions(cmd)
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
      const scorer = scorerFromOptions(opts, { cacheSize: 0 });
      const [result] = await scorer.score([pair]);
      const mean = result.logProb / result.tokens;
      if (opts.json) {
        const { capabilities: server, budgets } = await scorer.setup();
        console.log(JSON.stringify({ model: opts.lmModel, logProb: result.logProb, tokens: result.tokens, meanLogProb: mean, perToken: result.perToken, server, budgets: budgets.budgets }, null, 2));
      } else {
        const given = opts.doc === undefined ? 'context' : 'doc, context';
        console.log(`log P(continuation | ${given}) = ${result.logProb.toFixed(4)} over ${result.tokens} tokens (mean ${mean.toFixed(4)} per token, perplexity ${Math.exp(-mean).toFixed(2)})`);
      }
    });
}
