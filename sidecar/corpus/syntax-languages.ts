import * as path from 'node:path';

/** The parts of a tree-sitter node the syntax chunker reads (web-tree-sitter's Node satisfies it). */
export interface SyntaxNode {
  readonly type: string;
  readonly startIndex: number;
  readonly startPosition: { row: number; column: number };
  readonly endPosition: { row: number; column: number };
  readonly hasError: boolean;
  readonly namedChildren: (SyntaxNode | null)[];
  childForFieldName(field: string): SyntaxNode | null;
}

/** How to find definitions (functions, classes, methods…) in one tree-sitter grammar's trees. */
export interface SyntaxLanguage {
  /** Grammar name, as in VS Code's `tree-sitter-<id>.wasm`. */
  id: string;
  extensions: readonly string[];
  isDefinition(node: SyntaxNode): boolean;
  /** Nodes that wrap one definition and belong to it (`export`, decorators, `template<…>`): the passage starts there. */
  wrappers: ReadonlySet<string>;
  /** Siblings right above a definition that belong to it: comments (doc comments), attributes, decorators. */
  attached: ReadonlySet<string>;
}

function byType(types: string[]): (node: SyntaxNode) => boolean {
  const set = new Set(types);
  return (node) => set.has(node.type);
}

/** A C++ specifier is a definition only with a body: `struct S x;` declares a variable of a type defined elsewhere. */
function withBody(types: string[]): (node: SyntaxNode) => boolean {
  const set = new Set(types);
  return (node) => set.has(node.type) && node.childForFieldName('body') !== null;
}

const FUNCTION_VALUES = new Set(['function_expression', 'function', 'arrow_function', 'generator_function', 'class']);

/** The node that holds a value for each JavaScript construct that names one: `const f = …`, `a.b = …`, `{ f: … }`, `f = …` in a class. */
const VALUE_FIELDS: Record<string, string> = {
  variable_declarator: 'value',
  assignment_expression: 'right',
  pair: 'value',
  public_field_definition: 'value',
  field_definition: 'value',
};

/**
 * JavaScript and TypeScript define functions as statements and also by value: a declaration, assignment, object
 * property or class field whose value is a function or class is a definition too. Callbacks passed as arguments are not.
 */
function isScriptDefinition(types: string[]): (node: SyntaxNode) => boolean {
  const declared = new Set(types);
  const holdsFunction = (node: SyntaxNode | null) => {
    const field = node && VALUE_FIELDS[node.type];
    const value = field ? node.childForFieldName(field) : null;
    return value !== null && FUNCTION_VALUES.has(value.type);
  };
  return (node) => {
    if (declared.has(node.type)) return true;
    switch (node.type) {
      case 'lexical_declaration':
      case 'variable_declaration':
        return node.namedChildren.some(holdsFunction);
      case 'expression_statement':
        return holdsFunction(node.namedChildren[0]);
      case 'pair':
      case 'public_field_definition':
      case 'field_definition':
        return holdsFunction(node);
      default:
        return false;
    }
  };
}

const SCRIPT_DECLARATIONS = ['function_declaration', 'generator_function_declaration', 'class_declaration', 'method_definition'];
const TYPESCRIPT_DECLARATIONS = [
  ...SCRIPT_DECLARATIONS,
  'abstract_class_declaration',
  'interface_declaration',
  'type_alias_declaration',
  'enum_declaration',
  'internal_module',
  'module',
];
const COMMENT = new Set(['comment']);
const SCRIPT_ATTACHED = new Set(['comment', 'decorator']);
const SCRIPT_WRAPPERS = new Set(['export_statement', 'ambient_declaration']);
const NO_WRAPPERS = new Set<string>();

/** The grammars VS Code ships in @vscode/tree-sitter-wasm that have functions or classes (CSS, regex, INI have none). */
export const SYNTAX_LANGUAGES: readonly SyntaxLanguage[] = [
  {
    id: 'typescript',
    extensions: ['.ts', '.mts', '.cts'],
    isDefinition: isScriptDefinition(TYPESCRIPT_DECLARATIONS),
    wrappers: SCRIPT_WRAPPERS,
    attached: SCRIPT_ATTACHED,
  },
  { id: 'tsx', extensions: ['.tsx'], isDefinition: isScriptDefinition(TYPESCRIPT_DECLARATIONS), wrappers: SCRIPT_WRAPPERS, attached: SCRIPT_ATTACHED },
  {
    id: 'javascript',
    extensions: ['.js', '.mjs', '.cjs', '.jsx'],
    isDefinition: isScriptDefinition(SCRIPT_DECLARATIONS),
    wrappers: SCRIPT_WRAPPERS,
    attached: SCRIPT_ATTACHED,
  },
  {
    id: 'python',
    extensions: ['.py', '.pyi', '.pyw'],
    isDefinition: byType(['function_definition', 'class_definition']),
    wrappers: new Set(['decorated_definition']),
    attached: COMMENT,
  },
  {
    id: 'go',
    extensions: ['.go'],
    isDefinition: byType(['function_declaration', 'method_declaration', 'type_declaration']),
    wrappers: NO_WRAPPERS,
    attached: COMMENT,
  },
  {
    id: 'java',
    extensions: ['.java'],
    isDefinition: byType([
      'class_declaration',
      'interface_declaration',
      'enum_declaration',
      'record_declaration',
      'annotation_type_declaration',
      'method_declaration',
      'constructor_declaration',
      'compact_constructor_declaration',
    ]),
    wrappers: NO_WRAPPERS,
    attached: new Set(['line_comment', 'block_comment']),
  },
  {
    id: 'rust',
    extensions: ['.rs'],
    isDefinition: byType(['function_item', 'impl_item', 'trait_item', 'struct_item', 'enum_item', 'union_item', 'mod_item', 'macro_definition']),
    wrappers: NO_WRAPPERS,
    attached: new Set(['line_comment', 'block_comment', 'attribute_item']),
  },
  {
    id: 'c-sharp',
    extensions: ['.cs'],
    isDefinition: byType([
      'class_declaration',
      'struct_declaration',
      'interface_declaration',
      'enum_declaration',
      'record_declaration',
      'method_declaration',
      'constructor_declaration',
      'destructor_declaration',
      'operator_declaration',
      'conversion_operator_declaration',
      'local_function_statement',
    ]),
    wrappers: NO_WRAPPERS,
    attached: COMMENT,
  },
  {
    id: 'cpp',
    extensions: ['.cpp', '.cc', '.cxx', '.c++', '.hpp', '.hh', '.hxx', '.h', '.c'],
    isDefinition: withBody(['function_definition', 'class_specifier', 'struct_specifier', 'union_specifier', 'enum_specifier']),
    wrappers: new Set(['template_declaration']),
    attached: COMMENT,
  },
  {
    id: 'ruby',
    extensions: ['.rb'],
    isDefinition: byType(['method', 'singleton_method', 'class', 'module', 'singleton_class']),
    wrappers: NO_WRAPPERS,
    attached: COMMENT,
  },
  {
    id: 'php',
    extensions: ['.php'],
    isDefinition: byType([
      'function_definition',
      'class_declaration',
      'interface_declaration',
      'trait_declaration',
      'enum_declaration',
      'method_declaration',
    ]),
    wrappers: NO_WRAPPERS,
    attached: COMMENT,
  },
  { id: 'bash', extensions: ['.sh', '.bash'], isDefinition: byType(['function_definition']), wrappers: NO_WRAPPERS, attached: COMMENT },
];

const BY_EXTENSION = new Map(SYNTAX_LANGUAGES.flatMap((lang) => lang.extensions.map((ext) => [ext, lang] as const)));

/** The grammar for a file, by its extension (case-insensitive); undefined for files no grammar covers. */
export function languageOf(file: string): SyntaxLanguage | undefined {
  return BY_EXTENSION.get(path.extname(file).toLowerCase());
}
