import { posix } from 'node:path';
import picomatch from 'picomatch';
import { DEFAULT_EXCLUDES, type WalkOptions } from './walk';

/** Which rule of a walk leaves a file out, when no skip reason does (see `explainExclusion`). */
export type Exclusion =
  | { by: 'include' }
  | { by: 'default-exclude' | 'exclude'; pattern: string }
  /** A .gitignore, .git/info/exclude, or the .git folder itself. */
  | { by: 'gitignore' };

/**
 * Names the rule that keeps `relPath` (relative to its root, '/'-separated) out of a walk with `opts`, for a file
 * the walk does not produce at all: an include glob it misses, an exclude glob that matches it or a folder above
 * it (built-in or the user's), else the ignore files. The walk itself reports no reason for these (they are the
 * user's choice, not skips), so the same globs are matched here the way the walk matches them.
 */
export function explainExclusion(relPath: string, opts: Pick<WalkOptions, 'include' | 'exclude'>): Exclusion {
  const ancestors: string[] = [];
  for (let dir = posix.dirname(relPath); dir !== '.'; dir = posix.dirname(dir)) ancestors.push(dir);
  const excludes = opts.exclude ?? DEFAULT_EXCLUDES;
  const builtIn = new Set(DEFAULT_EXCLUDES);
  for (const pattern of excludes) {
    const matches = picomatch(pattern, { dot: true });
    if ([relPath, ...ancestors].some((rel) => matches(rel))) return { by: builtIn.has(pattern) ? 'default-exclude' : 'exclude', pattern };
  }
  if (opts.include?.length && !picomatch([...opts.include], { dot: true })(relPath)) return { by: 'include' };
  return { by: 'gitignore' };
}
