import type { Command } from 'commander';
import * as path from 'node:path';
import { WorkspaceIndex } from '../index/workspace-index';
import type { IndexManifest } from '../index/manifest';
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

/** The manifest of the index in `indexDir`; throws, saying what to run, when there is none or it cannot be read. */
export async function requireManifest(indexDir: string): Promise<IndexManifest> {
  // A damaged index throws here, naming the damage and how to rebuild it.
  const manifest = await WorkspaceIndex.readManifest(indexDir);
  if (!manifest) throw new Error(`no index at ${indexDir}: run \`replug-code index <folder> --index-dir ${indexDir}\` first`);
  return manifest;
}
