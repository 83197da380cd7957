import { Command } from 'commander';
import { registerCompleteCommand } from './complete-command';
import { disableOrtTelemetry } from '../encoder/ort-environment';
import { registerCompareCommand, registerEvalCommand } from './eval-command';
import { registerIndexCommand } from './index-command';
import { Interrupted, INTERRUPTED_EXIT_CODE } from './interrupted';
import { registerMcpCommand } from './mcp-command';
import { registerMergeShardsCommand } from './merge-shards-command';
import { register as registerScoreCommand } from './score';
import { registerSearchCommand } from './search-command';
import { registerStarterEncoderCommand } from './starter-encoder';
import { registerServeCommand } from './serve-command';
import { register as registerServeLmCommand } from './serve-lm';
import { registerTrainCommand } from './train-command';
import { version } from '../../package.json';

/** `replug-code`: the engine, headless. Each command lives in its own module and registers itself here. */
const program = new Command('replug-code')
  .description('Index a code base, search it, and adapt its retriever to a code LLM (REPLUG LSR).')
  .version(version)
  .showHelpAfterError('(run with --help for usage)');

registerStarterEncoderCommand(program);
registerIndexCommand(program);
registerMergeShardsCommand(program);
registerSearchCommand(program);
registerScoreCommand(program);
registerServeLmCommand(program);
registerTrainCommand(program);
registerEvalCommand(program);
registerCompareCommand(program);
registerMcpCommand(program);
registerCompleteCommand(program);
registerServeCommand(program);

// Before any command creates an ONNX Runtime session (encoders, and the training step on this thread).
disableOrtTelemetry();
program.parseAsync(process.argv).catch((err: unknown) => {
  process.stderr.write(`replug-code: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exitCode = err instanceof Interrupted ? INTERRUPTED_EXIT_CODE : 1;
});
