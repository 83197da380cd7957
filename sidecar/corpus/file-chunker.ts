import { chunkingFingerprint, chunkText, DEFAULT_CHUNKING, type ChunkOptions } from './chunk';
import { grammarPackageVersion, packageGrammars, type Grammars } from './grammars';
import type { Passage, TokenCounter } from './passage';
import { chunkSyntax } from './syntax-chunk';
import { languageOf } from './syntax-languages';

/**
 * lines: windows everywhere; syntax: definitions as passages in every language a grammar covers, windows elsewhere;
 * auto: syntax in the languages where it measured better (`SYNTAX_BY_DEFAULT`), windows elsewhere.
 */
export const CHUNKING_STRATEGIES = ['auto', 'lines', 'syntax'] as const;
export type ChunkingStrategy = (typeof CHUNKING_STRATEGIES)[number];

/**
 * Languages that `auto` cuts by syntax. Measured by `npm run measure:chunking` (README: Chunking): in Python, syntax
 * passages found documented functions better by BM25 (nDCG@10 +0.041 ± 0.006 with docstrings blanked, +0.052 ± 0.008
 * kept) and left REPLUG's held-out bits/byte unchanged (+0.007 ± 0.006 with the starter encoder, +0.003 ± 0.013 with
 * BM25); in JavaScript and TypeScript they raised bits/byte (+0.030 ± 0.012, +0.038 ± 0.019) and lost recall@10 where
 * doc comments are kept, so windows stay there. Other languages were not measured and keep windows.
 */
export const SYNTAX_BY_DEFAULT: ReadonlySet<string> = new Set(['python']);

/** How workspace files are cut into passages. */
export interface FileChunkOptions extends ChunkOptions {
  strategy: ChunkingStrategy;
}

export const DEFAULT_FILE_CHUNKING: Readonly<FileChunkOptions> = Object.freeze({ ...DEFAULT_CHUNKING, strategy: 'auto' });

/** Bumped when the syntax chunker would cut the same parse differently (definition kinds, splitting rules). */
const SYNTAX_CHUNKER_VERSION = 1;

/** Changes whenever the same files would be cut differently; line windows keep the fingerprint they always had. */
export function fileChunkingFingerprint(opts: FileChunkOptions): string {
  const windows = chunkingFingerprint(opts);
  if (opts.strategy === 'lines') return windows;
  const which = opts.strategy === 'auto' ? `auto(${[...SYNTAX_BY_DEFAULT].sort().join(',')})` : 'syntax';
  return `${which}-v${SYNTAX_CHUNKER_VERSION}-grammars${grammarPackageVersion()}+${windows}`;
}

/** The strategy an index was built with, from the chunking stamp its manifest records (which starts with the fingerprint). */
export function strategyOfFingerprint(stamp: string): ChunkingStrategy {
  if (stamp.startsWith('syntax-')) return 'syntax';
  return stamp.startsWith('auto(') ? 'auto' : 'lines';
}

/** Why a file that a grammar covers was cut into line windows after all. */
export type SyntaxFallback = 'grammar-unavailable' | 'parse-failed';

export interface ChunkedFile {
  passages: Passage[];
  fallback?: SyntaxFallback;
}

/**
 * Cuts workspace files by one strategy. Cutting by syntax, the grammar of each language is loaded on the first file that
 * needs it; a grammar that does not load and a parse that fails or runs out of time fall back to line windows for that
 * file (reported, never thrown).
 */
export class FileChunker {
  /** Grammars that failed to load, with the reason. */
  readonly unavailable = new Map<string, string>();

  constructor(
    readonly options: FileChunkOptions,
    private readonly grammars: Grammars = packageGrammars,
  ) {
    if (!CHUNKING_STRATEGIES.includes(options.strategy)) {
      throw new RangeError(`chunking strategy must be ${CHUNKING_STRATEGIES.join(', ')}, got ${JSON.stringify(options.strategy)}`);
    }
  }

  get fingerprint(): string {
    return fileChunkingFingerprint(this.options);
  }

  async chunk(file: { path: string; text: string }, countTokens: TokenCounter): Promise<ChunkedFile> {
    const windows = () => chunkText(file, this.options, countTokens);
    const language = this.options.strategy === 'lines' ? undefined : languageOf(file.path);
    if (!language || (this.options.strategy === 'auto' && !SYNTAX_BY_DEFAULT.has(language.id))) return { passages: windows() };
    const parser = await this.grammars.parser(language.id);
    if (parser instanceof Error) {
      this.unavailable.set(language.id, parser.message);
      return { passages: windows(), fallback: 'grammar-unavailable' };
    }
    const tree = this.grammars.parse(parser, file.text);
    if (!tree) return { passages: windows(), fallback: 'parse-failed' };
    try {
      return { passages: chunkSyntax(file, tree.rootNode, language, this.options, countTokens) };
    } finally {
      tree.delete();
    }
  }
}
