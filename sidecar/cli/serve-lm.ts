import { existsSync } from 'node:fs';
import path from 'node:path';
import type { Command } from 'commander';
import { Llama2cModel } from '../lm/llama2c/model';
import { LmServer } from '../lm/serve';
import { port, positiveInt } from './option-parsers';

/** `serve-lm`: an OpenAI-compatible server (vLLM's shapes) over a llama2.c checkpoint, for dry runs without a GPU. */
export function register(program: Command): void {
  program
    .command('serve-lm')
    .description('serve a llama2.c checkpoint over an OpenAI-compatible API (/v1/models, /v1/completions, /tokenize) for dry runs')
    .requiredOption('--model <path>', 'llama2.c checkpoint (.bin), e.g. stories260K.bin')
    .option('--tokenizer <path>', "llama2.c tokenizer (.bin); default: tokenizer.bin beside the model")
    .option('--port <n>', 'port to listen on (0 picks a free one)', port, 8000)
    .option('--host <host>', 'address to listen on', '127.0.0.1')
    .option('--name <name>', 'model name clients must send (default: the checkpoint file name without .bin)')
    .option('--threads <n>', 'ONNX Runtime threads for the forward pass', positiveInt, 1)
    .action(async (opts: { model: string; tokenizer?: string; port: number; host: string; name?: string; threads: number }) => {
      const tokenizer = opts.tokenizer ?? path.join(path.dirname(opts.model), 'tokenizer.bin');
      if (!existsSync(opts.model)) throw new Error(`model file ${opts.model} does not exist`);
      if (!existsSync(tokenizer)) throw new Error(`tokenizer file ${tokenizer} does not exist; pass --tokenizer PATH`);
      const model = await Llama2cModel.load(opts.model, tokenizer, { name: opts.name, threads: opts.threads });
      const server = new LmServer(model);
      const url = await server.listen(opts.port, opts.host);
      console.log(`serve-lm: serving "${model.name}" at ${url} (Ctrl-C to stop)`);
      await new Promise<void>((resolve) => {
        const stop = () => void server.close().then(() => model.close()).then(resolve);
        process.once('SIGINT', stop);
        process.once('SIGTERM', stop);
      });
    });
}
