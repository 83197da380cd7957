/**
 * Writes a random-weight BERT sentence-encoder folder (sidecar/encoder/random-bert.ts) of any shape, for tests and
 * benchmarks. Users get the offline starter encoder from `replug-code starter-encoder` instead.
 *
 *   node --import tsx scripts/make-tiny-bert.ts <outDir> [--layers 2 --hidden 32 --heads 4 --ffn 64 --vocab real|small
 *     --max-pos 64 --seed 1 --shape minilm --pooling mean|cls --prefix --no-shift]
 */
import { parseArgs } from 'node:util';
import { makeTinyBert, MINILM_SHAPE, type TinyBertOptions } from '../sidecar/encoder/random-bert';

export { makeTinyBert, MINILM_SHAPE, type TinyBertOptions } from '../sidecar/encoder/random-bert';

async function main(): Promise<void> {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      layers: { type: 'string' },
      hidden: { type: 'string' },
      heads: { type: 'string' },
      ffn: { type: 'string' },
      vocab: { type: 'string' },
      'max-pos': { type: 'string' },
      seed: { type: 'string' },
      shape: { type: 'string' },
      pooling: { type: 'string' },
      prefix: { type: 'boolean' },
      'no-shift': { type: 'boolean' },
    },
  });
  if (positionals.length !== 1) throw new Error('usage: make-tiny-bert.ts <outDir> [--layers N --hidden N --heads N --ffn N --vocab real|small --max-pos N --seed N --shape minilm --no-shift]');
  if (values.shape !== undefined && values.shape !== 'minilm') throw new Error(`--shape ${values.shape}: only "minilm" is known`);
  if (values.vocab !== undefined && values.vocab !== 'real' && values.vocab !== 'small') throw new Error('--vocab must be real or small');
  if (values.pooling !== undefined && values.pooling !== 'mean' && values.pooling !== 'cls') throw new Error('--pooling must be mean or cls');
  const int = (name: keyof typeof values) => {
    const v = values[name];
    if (v === undefined) return undefined;
    const n = Number(v);
    if (!Number.isInteger(n) || n <= 0) throw new Error(`--${name} must be a positive integer, got ${v}`);
    return n;
  };
  const base = values.shape === 'minilm' ? MINILM_SHAPE : {};
  const opts: TinyBertOptions = { ...base, pooling: values.pooling as 'mean' | 'cls' | undefined, prefixBert: values.prefix, noShift: values['no-shift'] };
  for (const [key, flag] of [['layers', 'layers'], ['hidden', 'hidden'], ['heads', 'heads'], ['ffn', 'ffn'], ['maxPos', 'max-pos'], ['seed', 'seed']] as const) {
    const n = int(flag);
    if (n !== undefined) opts[key] = n;
  }
  if (values.vocab) opts.vocab = values.vocab as 'real' | 'small';
  console.log(`wrote ${await makeTinyBert(positionals[0], opts)}`);
}

if (require.main === module) {
  main().catch((err) => {
    console.error((err as Error).message);
    process.exit(1);
  });
}
