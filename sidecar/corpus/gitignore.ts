import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import ignore, { type Ignore } from 'ignore';

/** The rules of one ignore file, matched against paths relative to the folder they belong to. */
interface RuleLevel {
  /** Posix path of the folder, relative to the walk root ('' for the root). */
  dir: string;
  rules: Ignore;
}

async function readRules(file: string): Promise<Ignore | undefined> {
  try {
    return ignore().add(await readFile(file, 'utf8'));
  } catch (err) {
    // A missing ignore file is the common case; an unreadable one must not stop the walk either.
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'EACCES') return undefined;
    throw err;
  }
}

/**
 * Git's ignore precedence inside one walk root: `.git/info/exclude` < root `.gitignore` < deeper `.gitignore`s, the
 * last matching rule winning (so `!keep.log` in a subfolder re-includes what a parent ignored). Files in an ignored
 * folder cannot be re-included, as in git: the walker never descends into such a folder. Ignore files above the root
 * are not read, so a root that lies inside an ignored folder (e.g. a package in node_modules) can still be indexed.
 */
export class GitignoreStack {
  private constructor(private readonly levels: readonly RuleLevel[]) {}

  /** Rules for a walk root: its `.git/info/exclude` and `.gitignore`. */
  static async forRoot(absRoot: string): Promise<GitignoreStack> {
    const levels: RuleLevel[] = [];
    for (const file of [join(absRoot, '.git', 'info', 'exclude'), join(absRoot, '.gitignore')]) {
      const rules = await readRules(file);
      if (rules) levels.push({ dir: '', rules });
    }
    return new GitignoreStack(levels);
  }

  /** The stack for a subfolder: this one plus the subfolder's own `.gitignore`, if any. */
  async enter(absDir: string, relDir: string): Promise<GitignoreStack> {
    const rules = await readRules(join(absDir, '.gitignore'));
    return rules ? new GitignoreStack([...this.levels, { dir: relDir, rules }]) : this;
  }

  /** Whether a root-relative posix path is ignored; folders must be tested as folders for `dir/` patterns. */
  ignores(relPath: string, isDir: boolean): boolean {
    let ignored = false;
    for (const level of this.levels) {
      const local = level.dir === '' ? relPath : relPath.slice(level.dir.length + 1);
      const result = level.rules.test(isDir ? `${local}/` : local);
      if (result.ignored) ignored = true;
      else if (result.unignored) ignored = false;
    }
    return ignored;
  }
}
