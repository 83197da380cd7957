import * as path from 'node:path';
import type { Parser, Tree } from '@vscode/tree-sitter-wasm';

type TreeSitter = typeof import('@vscode/tree-sitter-wasm');

const PACKAGE = '@vscode/tree-sitter-wasm';
const PARSE_DEADLINE_MS = 5_000;

/** The version of VS Code's grammar package: a new one may parse the same file differently. */
export function grammarPackageVersion(): string {
  return (require(`${PACKAGE}/package.json`) as { version: string }).version;
}

let runtime: Promise<{ treeSitter: TreeSitter; dir: string }> | undefined;

/**
 * Loads the tree-sitter runtime once per process, on first use: required lazily (not imported) so that indexing
 * with line windows never loads or compiles any WebAssembly.
 */
function loadRuntime(): Promise<{ treeSitter: TreeSitter; dir: string }> {
  runtime ??= (async () => {
    const treeSitter = require(PACKAGE) as TreeSitter;
    const dir = path.dirname(require.resolve(PACKAGE));
    await treeSitter.Parser.init({ locateFile: (file) => path.join(dir, file) });
    return { treeSitter, dir };
  })();
  return runtime;
}

export interface GrammarOptions {
  /** Folder of the `tree-sitter-<id>.wasm` grammars; default: the ones in VS Code's package. */
  dir?: string;
  /** A parse that runs longer is cancelled and the file is cut into line windows (pathological error recovery). */
  parseDeadlineMs?: number;
}

/**
 * One parser per grammar, each loaded on first use. A grammar that fails to load (a missing or damaged file, a
 * runtime that cannot start) is remembered with the error, and its files are cut into line windows.
 */
export class Grammars {
  private readonly parsers = new Map<string, Promise<Parser | Error>>();

  constructor(private readonly opts: GrammarOptions = {}) {}

  /** The parser for grammar `id`, or the error that kept it from loading. */
  parser(id: string): Promise<Parser | Error> {
    let parser = this.parsers.get(id);
    if (!parser) {
      parser = (async () => {
        const { treeSitter, dir } = await loadRuntime();
        const language = await treeSitter.Language.load(path.join(this.opts.dir ?? dir, `tree-sitter-${id}.wasm`));
        return new treeSitter.Parser().setLanguage(language);
      })().catch((err: unknown) => (err instanceof Error ? err : new Error(String(err))));
      this.parsers.set(id, parser);
    }
    return parser;
  }

  /** The tree of `text`, or undefined when the parse failed or ran past the deadline. The caller deletes the tree. */
  parse(parser: Parser, text: string): Tree | undefined {
    const deadline = performance.now() + (this.opts.parseDeadlineMs ?? PARSE_DEADLINE_MS);
    try {
      const tree = parser.parse(text, null, { progressCallback: () => performance.now() > deadline });
      if (!tree) parser.reset();
      return tree ?? undefined;
    } catch {
      parser.reset();
      return undefined;
    }
  }
}

/** VS Code's grammars, shared by every chunker of the process so each compiles once. */
export const packageGrammars = new Grammars();
