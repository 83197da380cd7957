import type { Command } from 'commander';
import * as path from 'node:path';
import { printablePath } from './printable';

/** Where an index lives when `--index-dir` is not given: beside the current folder, in `.replug/index`. */
export const DEFAULT_INDEX_DIR = path.join('.replug', 'index');

export function addIndexDirOption(cmd: Command): Command {
  return cmd.option('--index-dir <dir>', 'index directory', process.env.REPLUG_CODE_INDEX_DIR ?? DEFAULT_INDEX_DIR);
}

/** Path relative to the current folder when it lies below it, for compact output; quoted and escaped when it holds control characters. */
export function displayPath(file: string): string {
  const rel = path.relative(process.cwd(), file);
  return printablePath(rel && !rel.startsWith('..') && !path.isAbsolute(rel) ? rel : file);
}
