import { chunkingFingerprint, chunkText, DEFAULT_CHUNKING, type ChunkOptions } from './chunk';
import { grammarPackageVersion, packageGrammars, type Grammars } from './grammars';
import type { Passage, TokenCounter } from './passage';
import { chunkSyntax } from './syntax-chunk';
import { languageOf } from './syntax-languages';

/** lines: windows everywhere; syntax: definitions as passages in files a grammar covers, windows elsewhere. */
export const CHUNKING_STRATEGIES = ['lines', 'syntax'] as const;
export type ChunkingStrategy = (typeof CHUNKING_STRATEGIES)[number];

/** How workspace files are cut into passages. */
export interface FileChunkOptions extends ChunkOptions {
  strategy: ChunkingStrategy;
}

export const DEFAULT_FILE_CHUNKING: Readonly<FileChunkOptions> = Object.freeze({ ...DEFAULT_CHUNKING, strategy: 'lines' });

/** Bumped when the syntax chunker would cut the same parse differently (definition kinds, splitting rules). */
const SYNTAX_CHUNKER_VERSION = 1;

/** Changes whenever the same files would be cut differently; line windows keep the fingerprint they always had. */
export function fileChunkingFingerprint(opts: FileChunkOptions): string {
  const windows = chunkingFingerprint(opts);
  if (opts.strategy === 'lines') return windows;
  return `syntax-v${SYNTAX_CHUNKER_VERSION}-grammars${grammarPackageVersion()}+${windows}`;
}

/** The strategy an index was built with, from the chunking stamp its manifest records (which starts with the fingerprint). */
export function strategyOfFingerprint(stamp: string): ChunkingStrategy {
  return stamp.startsWith('syntax-') ? 'syntax' : 'lines';
}

/** Why a file that a grammar covers was cut into line windows after all. */
export type SyntaxFallback = 'grammar-unavailable' | 'parse-failed';

export interface ChunkedFile {
  passages: Passage[];
  fallback?: SyntaxFallback;
}

/**
 * Cuts workspace files by one strategy. With `syntax`, the grammar of each language is loaded on the first file that
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
      throw new RangeError(`chunking strategy must be ${CHUNKING_STRATEGIES.join(' or ')}, got ${JSON.stringify(options.strategy)}`);
    }
  }

  get fingerprint(): string {
    return fileChunkingFingerprint(this.options);
  }

  async chunk(file: { path: string; text: string }, countTokens: TokenCounter): Promise<ChunkedFile> {
    const windows = () => chunkText(file, this.options, countTokens);
    const language = this.options.strategy === 'syntax' ? languageOf(file.path) : undefined;
    if (!language) return { passages: windows() };
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
