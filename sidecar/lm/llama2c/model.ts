import path from 'node:path';
import type { LanguageModel } from '../language-model';
import { loadCheckpoint } from './checkpoint';
import { EOS, Llama2cTokenizer } from './tokenizer';
import { Llama2cTransformer } from './transformer';

/** A llama2.c checkpoint plus its tokenizer, served through the LanguageModel interface. */
export class Llama2cModel implements LanguageModel {
  readonly maxContext: number;
  readonly eos = EOS;

  private constructor(
    readonly name: string,
    readonly transformer: Llama2cTransformer,
    readonly tokenizer: Llama2cTokenizer,
  ) {
    this.maxContext = transformer.config.seqLen;
  }

  /** Loads `modelFile` (.bin checkpoint) and `tokenizerFile` (tokenizer.bin layout); the name defaults to the file stem. */
  static load(modelFile: string, tokenizerFile: string, name = path.basename(modelFile, '.bin')): Llama2cModel {
    const { config, weights } = loadCheckpoint(modelFile);
    return new Llama2cModel(name, new Llama2cTransformer(config, weights), new Llama2cTokenizer(tokenizerFile, config.vocabSize));
  }

  tokenize(text: string, addSpecialTokens: boolean): number[] {
    return this.tokenizer.encode(text, addSpecialTokens);
  }

  decode(ids: number[]): { text: string; offsets: number[] } {
    return this.tokenizer.decode(ids);
  }

  logProbs(ids: number[]): Float32Array[] {
    return this.transformer.logProbs(ids);
  }
}
