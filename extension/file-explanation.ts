import type { FileExplanation } from '../sidecar/server/protocol';
import { notice } from './untrusted-text';

type SkipReason = Extract<FileExplanation, { state: 'skipped' }>['reason'];

/** Why the corpus leaves a file out, in the words of "it is not indexed: …". */
const SKIP_REASONS: Record<SkipReason, string> = {
  binary: 'it looks like a binary file',
  'not-utf8': 'it is not UTF-8 text',
  'too-large': 'it is larger than the size limit for one file',
  minified: 'it looks minified (most of its text is on very long lines); replugCode.keep can index it anyway',
  generated: 'it looks machine-generated (a "generated … do not edit" header)',
  'lock-file': 'it is a dependency lock file',
  unreadable: 'it could not be read',
  'symlink-outside-root': 'it is a symlink to a place outside the workspace folder (symlinks are not followed)',
  'symlink-loop': 'it is a symlink that loops (symlinks are not followed)',
  duplicate: 'the same file is indexed under another path',
  'name-not-utf8': 'its name (or a folder name on its path) is not valid UTF-8; rename it to index it',
};

/**
 * The answer to "why isn't this file indexed?" for `relPath` (as the user sees the path), and whether the settings
 * can change it. The path and the sidecar's details are untrusted: quoted through `notice`.
 */
export function explanationText(relPath: string, why: FileExplanation): { text: string; settings?: string } {
  switch (why.state) {
    case 'indexed':
      return { text: notice`REPLUG: ${relPath} is indexed (${why.passages} passage${why.passages === 1 ? '' : 's'}).` };
    case 'skipped': {
      const reason = SKIP_REASONS[why.reason] ?? why.reason;
      return { text: why.detail ? notice`REPLUG: ${relPath} is not indexed: ${reason} (${why.detail}).` : notice`REPLUG: ${relPath} is not indexed: ${reason}.` };
    }
    case 'excluded':
      switch (why.by) {
        case 'gitignore':
          return { text: notice`REPLUG: ${relPath} is not indexed: a .gitignore (or .git/info/exclude) ignores it.` };
        case 'default-exclude':
          return { text: notice`REPLUG: ${relPath} is not indexed: the built-in exclude ${why.pattern} leaves out dependencies, build output and editor folders.` };
        case 'exclude':
          return { text: notice`REPLUG: ${relPath} is not indexed: the exclude pattern ${why.pattern} (REPLUG › Exclude or Files: Exclude) matches it.`, settings: 'replugCode.exclude' };
        case 'include':
          return { text: notice`REPLUG: ${relPath} is not indexed: it matches none of the REPLUG › Include patterns.`, settings: 'replugCode.include' };
      }
      break;
    case 'outside-roots':
      return { text: notice`REPLUG: ${relPath} is not indexed: it is outside the workspace folders REPLUG indexes.` };
    case 'not-indexed':
      return { text: notice`REPLUG: ${relPath} is not indexed yet; REPLUG: Index Workspace picks it up.` };
    case 'missing':
      return { text: notice`REPLUG: there is no file ${relPath}.` };
  }
}
