/**
 * A labelled code-search set built from real code, for comparing chunkers (scripts/measure-chunking.ts): each
 * documented function or method gives one query, the first sentence of its JSDoc comment or docstring, and its gold
 * is the lines of its definition. Doc comments and docstrings are blanked in the corpus (replaced by spaces, so every
 * line keeps its number), as CodeSearchNet strips docstrings: otherwise the query's own words sit next to the gold and
 * retrieval only has to find the comment. Workspaces are the packages in node_modules (each indexed as its own
 * repository, with the indexer's own walk rules) and, where a Python is installed, the packages of its standard library.
 */
import { readdirSync, statSync } from 'node:fs';
import * as path from 'node:path';
import { packageGrammars } from '../sidecar/corpus/grammars';
import { languageOf, type SyntaxNode } from '../sidecar/corpus/syntax-languages';
import { walkRoots } from '../sidecar/corpus/walk';

export interface SetFile {
  path: string;
  /** The file as indexed: doc comments and docstrings blanked. */
  text: string;
}

export interface SetQuery {
  workspace: string;
  /** Grammar of the gold file: javascript, typescript, tsx or python. */
  language: string;
  text: string;
  path: string;
  /** 1-based inclusive lines of the definition (from `export` or its first decorator to its end, without its doc). */
  startLine: number;
  endLine: number;
}

export interface Workspace {
  name: string;
  files: SetFile[];
  queries: SetQuery[];
}

const QUERY_LANGUAGES = new Set(['javascript', 'typescript', 'tsx', 'python']);
/** Definition kinds of the syntax chunker that are not functions: classes, interfaces, types, enums, namespaces. */
const NOT_FUNCTION = /class|interface|type_alias|enum|module/;
const MIN_WORDS = 3;
const MAX_WORDS = 40;

/** Each package in `modules` (scoped ones too), in name order. */
export function packageWorkspaces(modules: string): { name: string; root: string }[] {
  const out: { name: string; root: string }[] = [];
  for (const name of readdirSync(modules).sort()) {
    if (name.startsWith('.')) continue;
    const dir = path.join(modules, name);
    if (name.startsWith('@')) for (const sub of readdirSync(dir).sort()) out.push({ name: `${name}/${sub}`, root: path.join(dir, sub) });
    else out.push({ name, root: dir });
  }
  return out.filter((w) => statSync(w.root).isDirectory());
}

/** The packages of a Python standard library (`test` left out), plus its top-level modules as one workspace. */
export function pythonWorkspaces(stdlib: string): { name: string; root: string; only?: string[] }[] {
  const entries = readdirSync(stdlib, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name));
  const packages = entries
    .filter((e) => e.isDirectory() && !['test', 'idlelib', 'site-packages', 'dist-packages', '__pycache__'].includes(e.name) && !e.name.startsWith('lib-'))
    .map((e) => ({ name: `python/${e.name}`, root: path.join(stdlib, e.name) }));
  const top = entries.filter((e) => e.isFile() && e.name.endsWith('.py')).map((e) => path.join(stdlib, e.name));
  return [...packages, { name: 'python/(top-level modules)', root: stdlib, only: top }];
}

/** Reads a workspace with the indexer's walk rules, blanks its doc comments and collects its queries. */
export async function loadWorkspace(name: string, root: string, only?: string[]): Promise<Workspace> {
  const files: SetFile[] = [];
  const queries: SetQuery[] = [];
  for await (const entry of walkRoots([root], { only })) {
    if (entry.kind !== 'file') continue;
    const found = await documented(entry.absPath, entry.text);
    files.push({ path: entry.absPath, text: found.text });
    for (const q of found.queries) queries.push({ workspace: name, ...q });
  }
  // A summary shared by two definitions (overloads, copies) has no single answer.
  const count = new Map<string, number>();
  for (const q of queries) count.set(q.text, (count.get(q.text) ?? 0) + 1);
  return { name, files, queries: queries.filter((q) => count.get(q.text) === 1) };
}

/** The file's text with doc comments and docstrings blanked, and a query for each documented function in it. */
async function documented(file: string, text: string): Promise<{ text: string; queries: Omit<SetQuery, 'workspace'>[] }> {
  const language = languageOf(file);
  if (!language || !QUERY_LANGUAGES.has(language.id) || /\.d\.[cm]?ts$/.test(file)) return { text, queries: [] };
  const parser = await packageGrammars.parser(language.id);
  if (parser instanceof Error) throw parser;
  const tree = packageGrammars.parse(parser, text);
  if (!tree) return { text, queries: [] };
  try {
    const docs: { start: number; end: number }[] = [];
    const queries: Omit<SetQuery, 'workspace'>[] = [];
    const add = (doc: SyntaxNode & { startIndex: number; endIndex: number }, definition: SyntaxNode | undefined, raw: string) => {
      docs.push({ start: doc.startIndex, end: doc.endIndex });
      const summary = definition && !definition.hasError ? firstSentence(raw) : undefined;
      if (!summary || !definition) return;
      queries.push({ language: language.id, text: summary, path: file, startLine: definition.startPosition.row + 1, endLine: lastRow(definition) + 1 });
    };
    const stack = [tree.rootNode];
    for (let node = stack.pop(); node; node = stack.pop()) {
      const children = node.namedChildren.filter((c) => c !== null);
      children.forEach((child, i) => {
        if (language.id === 'python') {
          const docstring = pythonDocstring(child);
          if (docstring) {
            const isFunction = child.type === 'function_definition';
            const owner = isFunction && node!.type === 'decorated_definition' ? node! : child;
            add(docstring, isFunction ? owner : undefined, docstring.text);
          }
        } else if (child.type === 'comment' && child.text.startsWith('/**')) {
          const next = children[i + 1];
          const adjacent = next && next.startPosition.row <= lastRow(child) + 1 ? next : undefined;
          add(child, adjacent && isFunction(adjacent, language.isDefinition) ? adjacent : undefined, child.text);
        }
        stack.push(child);
      });
    }
    return { text: blank(text, docs), queries };
  } finally {
    tree.delete();
  }
}

type TreeNode = SyntaxNode & { startIndex: number; endIndex: number; text: string; namedChildren: (TreeNode | null)[] };

/** A function (or `export` of one) by the syntax chunker's own definition kinds, minus classes, interfaces and types. */
function isFunction(node: TreeNode, isDefinition: (n: SyntaxNode) => boolean): boolean {
  const inner = node.type === 'export_statement' ? (node.childForFieldName('declaration') as TreeNode | null) : node;
  if (!inner || !isDefinition(inner) || NOT_FUNCTION.test(inner.type)) return false;
  // `const X = class …` and `a.B = class …` define classes by value.
  return !/^\s*(?:export\s+)?(?:const|let|var)?\s*[\w$.]+\s*=\s*class\b/.test(inner.text.split('\n')[0]);
}

/** The string that opens the body of a Python function or class. */
function pythonDocstring(node: TreeNode): TreeNode | undefined {
  if (node.type !== 'function_definition' && node.type !== 'class_definition') return undefined;
  const first = (node.childForFieldName('body') as TreeNode | null)?.namedChildren[0];
  const string = first?.type === 'expression_statement' ? first.namedChildren[0] : undefined;
  return string?.type === 'string' ? string : undefined;
}

/** The first sentence of a doc comment's description (before any @tag), if it has MIN_WORDS to MAX_WORDS words. */
export function firstSentence(doc: string): string | undefined {
  const body = doc
    .replace(/^\s*(?:\/\*\*|[rRuUbB]{0,2}("""|'''|"|'))/, '')
    .replace(/(?:\*\/|"""|'''|"|')\s*$/, '')
    .split('\n')
    .map((l) => l.replace(/^\s*\*? ?/, '').trim());
  const description: string[] = [];
  for (const line of body) {
    if (line.startsWith('@') || line.startsWith(':param') || /^(Args|Returns|Raises|Parameters|Example)s?:/.test(line)) break;
    if (line === '' && description.length > 0) break;
    if (line !== '') description.push(line);
  }
  const prose = description
    .join(' ')
    .replace(/\{@\w+\s+([^}|]+)(?:\|[^}]*)?\}/g, '$1')
    .replace(/[`*]/g, '')
    .trim();
  const sentence = (/^(.+?[.!?])(?:\s|$)/.exec(prose)?.[1] ?? prose).trim();
  const words = sentence.split(/\s+/).filter((w) => /[\p{L}\p{N}]/u.test(w)).length;
  return words >= MIN_WORDS && words <= MAX_WORDS ? sentence : undefined;
}

function lastRow(node: SyntaxNode): number {
  const { row, column } = node.endPosition;
  return column === 0 && row > node.startPosition.row ? row - 1 : row;
}

/** `text` with the ranges in `spans` (UTF-16 indexes, as web-tree-sitter gives them) replaced by spaces, newlines kept. */
function blank(text: string, spans: { start: number; end: number }[]): string {
  const chars = text.split('');
  for (const { start, end } of spans) for (let i = start; i < end; i++) if (chars[i] !== '\n' && chars[i] !== '\r') chars[i] = ' ';
  return chars.join('');
}
