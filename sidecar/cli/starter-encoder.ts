import { existsSync, readdirSync } from 'node:fs';
import type { Command } from 'commander';
import { makeTinyBert, STARTER_ENCODER, STARTER_TRAINING_FLAGS } from '../encoder/random-bert';
import { displayPath } from './index-dir';
import { nonNegativeInt } from './option-parsers';

/** `starter-encoder`: an encoder that needs no download, for trying dense search and LSR offline. */
export function registerStarterEncoderCommand(program: Command): void {
  program
    .command('starter-encoder')
    .description('write a small random-weight BERT encoder folder for trying dense search and LSR training offline (it retrieves well only once trained)')
    .argument('<dir>', 'folder to create (new or empty)')
    .option('--seed <n>', 'seed of the random weights', nonNegativeInt, 1)
    .action(async (dir: string, opts: { seed: number }) => {
      if (existsSync(dir) && readdirSync(dir).length > 0) throw new Error(`${dir} is not empty: choose a new folder for the starter encoder`);
      await makeTinyBert(dir, { ...STARTER_ENCODER, seed: opts.seed });
      const shown = displayPath(dir);
      process.stdout.write(
        `wrote a starter encoder (random weights, ${STARTER_ENCODER.layers} layers, ${STARTER_ENCODER.hidden} dimensions) to ${shown}\n` +
          `index with it:  replug-code index FOLDER --model ${shown}\n` +
          `train it with:  replug-code train --output OUT ${STARTER_TRAINING_FLAGS.join(' ')}  (a random encoder needs this higher learning rate)\n` +
          `for real use, index with a pretrained encoder: --model sentence-transformers/all-MiniLM-L6-v2\n`,
      );
    });
}
