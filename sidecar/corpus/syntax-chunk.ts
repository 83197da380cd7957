import { chunkLines, makePassage, splitLines, type ChunkOptions, type LinePiece } from './chunk';
import type { Passage, TokenCounter } from './passage';
import type { SyntaxLanguage, SyntaxNode } from './syntax-languages';

/** 0-based inclusive rows of a definition and the node to split it by. */
interface Definition {
  node: SyntaxNode;
  /** First row of the comments, decorators or attributes attached above it, else `code`. */
  first: number;
  /** First row of its code (of its outermost wrapper, such as `export`). */
  code: number;
  last: number;
}

/** A piece with no letter or digit (a class's closing `}` or `});` between definitions) finds nothing worth finding. */
const WORTH_A_PASSAGE = /[\p{L}\p{N}]/u;

/**
 * Cuts a parsed source file into passages that follow its syntax: a definition (function, class, method…) whose text
 * fits `maxTokens` is one passage, whatever its line count; one that does not is split the same way by the
 * definitions inside it (a class by its methods), and what no definition covers — imports, top-level statements,
 * a class's fields, a long function without inner definitions — is cut into line windows as `chunkLines` cuts them.
 * A file that fits the budget whole is one passage, as with line windows. Line numbers are 1-based and inclusive;
 * passage text is the exact lines, joined with '\n'. Definitions that contain a syntax error are not trusted as
 * units: their lines are treated like any other code.
 */
export function chunkSyntax(
  input: { path: string; text: string },
  root: SyntaxNode,
  language: SyntaxLanguage,
  opts: ChunkOptions,
  countTokens: TokenCounter,
): Passage[] {
  const lines = splitLines(input.text);
  const before = new Float64Array(lines.length + 1); // before[i]: tokens of lines 0..i-1
  lines.forEach((line, i) => (before[i + 1] = before[i] + countTokens(line)));
  const fits = (first: number, last: number) => before[last + 1] - before[first] <= opts.maxTokens;
  const lastRow = lines.length - 1;
  // `whole`: a definition, or all the code between two, that fits the budget; the rest are windows of something longer.
  const pieces: (LinePiece & { whole: boolean })[] = [];

  const blank = (row: number) => lines[row].trim() === '';
  const trimBlank = (first: number, last: number): [number, number] => {
    while (first <= last && blank(first)) first++;
    while (last >= first && blank(last)) last--;
    return [first, last];
  };
  const whole = (from: number, to: number) => {
    const [first, last] = trimBlank(from, to);
    const text = lines.slice(first, last + 1).join('\n');
    if (first <= last && WORTH_A_PASSAGE.test(text)) pieces.push({ first, last, text, whole: true });
  };
  const windows = (from: number, to: number) => {
    const [first, last] = trimBlank(from, to);
    if (first > last) return;
    if (fits(first, last)) return whole(first, last);
    for (const piece of chunkLines(lines.slice(first, last + 1), opts, countTokens)) {
      if (WORTH_A_PASSAGE.test(piece.text)) pieces.push({ first: piece.first + first, last: piece.last + first, text: piece.text, whole: false });
    }
  };
  // Work in document order on an explicit stack (definitions nest arbitrarily deep in hostile input).
  type Work = { def: Definition } | { gap: [number, number] } | { whole: [number, number] };
  const work: Work[] = lines.length > 0 ? [{ def: { node: root, first: 0, code: 0, last: lastRow } }] : [];
  for (let item = work.pop(); item; item = work.pop()) {
    if ('gap' in item) {
      windows(...item.gap);
      continue;
    }
    if ('whole' in item) {
      whole(...item.whole);
      continue;
    }
    const { def } = item;
    // Whole with its comments if it fits; else the code whole and the comments cut like the code between definitions.
    const first = fits(def.first, def.last) ? def.first : def.code;
    if (fits(first, def.last)) {
      work.push({ whole: [first, def.last] }, { gap: [def.first, first - 1] });
      continue;
    }
    const parts: Work[] = [];
    let next = def.first;
    for (const inner of definitionsIn(def.node, language, lastRow)) {
      parts.push({ gap: [next, inner.first - 1] }, { def: inner });
      next = Math.max(next, inner.last + 1);
    }
    parts.push({ gap: [next, def.last] });
    for (let i = parts.length - 1; i >= 0; i--) work.push(parts[i]);
  }

  const seen = new Set<string>();
  const passages: Passage[] = [];
  for (const piece of mergeWhole(pieces, lines, fits)) {
    const passage = makePassage(input.path, piece.first + 1, piece.last + 1, piece.text);
    if (seen.has(passage.id)) continue;
    seen.add(passage.id);
    passages.push(passage);
  }
  return passages;
}

/**
 * Consecutive whole pieces (definitions, and the code between them) share a passage while together they fit the
 * budget, as cAST (Zhang et al., 2025) merges sibling nodes: small functions and the lines around them make passages
 * as full as windows instead of a scatter of small ones. Windows of longer code are left as they are.
 */
function mergeWhole(pieces: readonly (LinePiece & { whole: boolean })[], lines: readonly string[], fits: (first: number, last: number) => boolean): LinePiece[] {
  const merged: LinePiece[] = [];
  let open: { first: number; last: number } | undefined;
  const close = () => {
    if (open) merged.push({ ...open, text: lines.slice(open.first, open.last + 1).join('\n') });
    open = undefined;
  };
  for (const piece of pieces) {
    if (!piece.whole) {
      close();
      merged.push(piece);
    } else if (open && piece.first > open.last && fits(open.first, piece.last)) {
      open.last = piece.last;
    } else {
      close();
      open = { first: piece.first, last: piece.last };
    }
  }
  close();
  return merged;
}

/**
 * The outermost error-free definitions below `node` (not `node` itself), in document order. Each owns the rows from
 * its outermost wrapper (`export`, a decorated definition, `template<…>`) and the comments, decorators and attributes
 * directly above that (no blank line between, each on a line of its own) to its end. Parents and siblings are read
 * from the walk itself: web-tree-sitter finds a node's parent by descending from the root, which made nested code
 * quadratic.
 */
function definitionsIn(node: SyntaxNode, language: SyntaxLanguage, lastRow: number): Definition[] {
  const found: Definition[] = [];
  // `first`/`outer`: where the chain of wrappers around `node` starts and its outermost wrapper, when `node` is wrapped.
  const pending: { node: SyntaxNode; first?: number; outer?: SyntaxNode }[] = [{ node }];
  for (let item = pending.pop(); item; item = pending.pop()) {
    const parent = item.node;
    const wrapper = language.wrappers.has(parent.type);
    const children = parent.namedChildren;
    children.forEach((child, i) => {
      if (!child) return;
      const isDefinition = !child.hasError && language.isDefinition(child);
      if (!isDefinition && !language.wrappers.has(child.type)) {
        pending.push({ node: child });
        return;
      }
      const first = wrapper && item.first !== undefined ? item.first : leadingRow(children, i, parent, language);
      const outer = wrapper ? (item.outer ?? parent) : child;
      const clamp = (row: number) => Math.min(row, lastRow);
      if (isDefinition) {
        found.push({ node: child, first: clamp(first), code: clamp(outer.startPosition.row), last: clamp(Math.max(endRow(outer), endRow(child))) });
      } else pending.push({ node: child, first, outer });
    });
  }
  return found.sort((a, b) => a.first - b.first);
}

/** The first row of `children[i]` with the attached comments, decorators or attributes right above it. */
function leadingRow(children: readonly (SyntaxNode | null)[], i: number, parent: SyntaxNode, language: SyntaxLanguage): number {
  let first = children[i]!.startPosition.row;
  for (let j = i - 1; j >= 0; j--) {
    const above = children[j];
    if (!above || !language.attached.has(above.type) || endRow(above) < first - 1) break;
    // A comment after code on the same line belongs to that code. With nothing before it in its parent, the comment is
    // on a line of its own when the parent (a class body's `{`) starts on an earlier row, or starts with the comment.
    const previous = children[j - 1];
    const ownLine = previous
      ? endRow(previous) < above.startPosition.row
      : parent.startPosition.row < above.startPosition.row || parent.startIndex === above.startIndex;
    if (!ownLine) break;
    first = above.startPosition.row;
  }
  return first;
}

/** The last row holding text of `node`: a node that ends with its newline ends at column 0 of the next row. */
function endRow(node: SyntaxNode): number {
  const { row, column } = node.endPosition;
  return column === 0 && row > node.startPosition.row ? row - 1 : row;
}
