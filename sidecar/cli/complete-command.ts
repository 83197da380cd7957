import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { InvalidArgumentError, type Command } from 'commander';
import type { Completion } from '../generate/generator';
import type { SourceSpan } from '../generate/retrieval';
import { splitLines } from '../corpus/chunk';
import { displayPath } from './index-dir';
import { addGenerateOptions, generatorFromOptions, type GenerateCliOptions } from './generate-options';
import { nonNegativeInt, positiveNumber } from './option-parsers';

interface CompleteCliOptions extends GenerateCliOptions {
  stop: string[];
  temperature: number;
  topP?: number;
  seed?: number;
  source?: SourceSpan;
  json?: boolean;
}

/** `--source path[:start-end]`: the prompt's own span in the workspace. */
function sourceSpan(value: string): SourceSpan {
  const m = /^(.*?)(?::(\d+)-(\d+))?$/.exec(value)!;
  const [start, end] = [m[2], m[3]].map((n) => (n === undefined ? undefined : Number(n)));
  if (start !== undefined && (start < 1 || end! < start)) throw new InvalidArgumentError(`expected path[:start-end] with 1 <= start <= end, got "${value}".`);
  return { path: path.resolve(m[1]), startLine: start, endLine: end };
}

/** `complete`: continues a prompt (a file, or stdin) with REPLUG ensembling over the index, streaming to stdout. */
export function registerCompleteCommand(program: Command): void {
  const cmd = program
    .command('complete')
    .description('continue a prompt with the LM, REPLUG-ensembled over passages retrieved from the index (or concat / none)')
    .argument('[file]', 'the prompt; "-" or none: stdin')
    .option('--stop <text>', 'stop before this text (repeatable)', (v: string, all: string[]) => [...all, v], [])
    .option('--temperature <t>', '0: greedy', (v) => (v === '0' ? 0 : positiveNumber(v)), 0)
    .option('--top-p <p>', 'nucleus sampling cut-off in (0, 1]', positiveNumber)
    .option('--seed <n>', 'seed of sampling', nonNegativeInt)
    .option('--source <path[:start-end]>', "where the prompt comes from; passages overlapping it are never retrieved (default: the prompt file's lines)", sourceSpan)
    .option('--json', 'print the completion, finish reason and the passages used with their weights as JSON');
  addGenerateOptions(cmd, 64);
  cmd.action(async (file: string | undefined, opts: CompleteCliOptions) => {
    const fromFile = file !== undefined && file !== '-';
    let prompt: string;
    try {
      prompt = readFileSync(fromFile ? file : 0, 'utf8');
    } catch (err) {
      throw new Error(`cannot read the prompt from ${fromFile ? file : 'stdin'}: ${(err as Error).message}`);
    }
    const source = opts.source ?? (fromFile ? { path: path.resolve(file), startLine: 1, endLine: splitLines(prompt).length } : undefined);
    const { generator, index } = await generatorFromOptions(opts);
    const abort = new AbortController();
    const onSigint = () => abort.abort(new Error('cancelled'));
    process.once('SIGINT', onSigint);
    try {
      const result = await generator.complete(
        { prompt, mode: opts.mode, k: opts.k, maxTokens: opts.maxTokens, stop: opts.stop, temperature: opts.temperature, topP: opts.topP, seed: opts.seed, source },
        { signal: abort.signal, onText: opts.json ? undefined : (delta) => process.stdout.write(delta) },
      );
      if (opts.json) process.stdout.write(`${JSON.stringify(asJson(result, opts), null, 2)}\n`);
      else {
        if (process.stdout.isTTY) process.stdout.write('\n');
        process.stderr.write(summary(result));
      }
    } finally {
      process.off('SIGINT', onSigint);
      await index?.close();
    }
  });
}

function asJson(r: Completion, opts: CompleteCliOptions) {
  return {
    text: r.text,
    finishReason: r.finishReason,
    mode: opts.mode,
    model: opts.lmModel,
    passages: r.passages.map(({ path: file, startLine, endLine, similarity, weight, text }) => ({ path: file, startLine, endLine, similarity, weight, text })),
    usage: { promptTokens: r.promptTokens, completionTokens: r.completionTokens },
    requests: r.requests,
  };
}

/** One stderr line: how the text ended, what it cost, which passages weighed in. */
function summary(r: Completion): string {
  const passages = r.passages.map((p) => `${displayPath(p.path)}:${p.startLine}-${p.endLine} (λ ${p.weight.toFixed(3)})`);
  return `[${r.completionTokens} tokens, ${r.finishReason}, ${r.requests} LM requests${passages.length ? `; passages: ${passages.join(', ')}` : ''}]\n`;
}
