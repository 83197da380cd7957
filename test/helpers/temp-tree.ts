import { mkdtempSync, mkdirSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';

/** A throwaway folder tree: `files` maps relative paths to contents. Removed by `cleanup`. */
export function makeTree(files: Record<string, string | Buffer>, prefix = 'replug-test-'): { root: string; cleanup: () => void } {
  const root = mkdtempSync(path.join(tmpdir(), prefix));
  writeFiles(root, files);
  return { root, cleanup: () => rmSync(root, { recursive: true, force: true }) };
}

export function writeFiles(root: string, files: Record<string, string | Buffer>): void {
  for (const [rel, content] of Object.entries(files)) {
    const file = path.join(root, rel);
    mkdirSync(path.dirname(file), { recursive: true });
    writeFileSync(file, content);
  }
}
