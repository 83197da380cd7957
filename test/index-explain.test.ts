import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { WorkspaceIndex } from '../sidecar/index/workspace-index';
import { makeTree } from './helpers/temp-tree';

const code = (name: string) => `export function ${name}(x: number): number {\n  return x + 1;\n}\n`;

test('explainFile says why each file is or is not in the index', async () => {
  const tree = makeTree({
    '.gitignore': '*.log\n',
    'src/app.ts': code('app'),
    'src/big.ts': `${code('big')}${'// padding line\n'.repeat(400)}`,
    'src/package-lock.json': '{}\n',
    'src/debug.log': 'ignored\n',
    'dist/out.js': code('built'),
    '.vscode/settings.json': '{ "editor.tabSize": 2 }\n',
    'docs/guide.ts': code('guide'),
    'tools/gen.ts': code('tool'),
  });
  const dir = mkdtempSync(path.join(tmpdir(), 'replug-explain-'));
  const outside = mkdtempSync(path.join(tmpdir(), 'replug-outside-'));
  writeFileSync(path.join(outside, 'elsewhere.ts'), code('elsewhere'));
  const at = (rel: string) => path.join(tree.root, rel);
  try {
    const index = await WorkspaceIndex.open(dir, { exclude: ['docs/**'], include: ['src/**', 'dist/**', 'docs/**', '.vscode/**', 'fresh.ts'], maxFileBytes: 2000 });
    await index.update([tree.root]);
    writeFileSync(at('fresh.ts'), code('fresh'));
    try {
      const app = await index.explainFile(at('src/app.ts'));
      assert.equal(app.state, 'indexed');
      assert.ok(app.state === 'indexed' && app.passages >= 1);
      const size = code('big').length + '// padding line\n'.length * 400;
      assert.deepEqual(await index.explainFile(at('src/big.ts')), { state: 'skipped', reason: 'too-large', detail: `${size} bytes (limit 2000)` });
      assert.deepEqual(await index.explainFile(at('src/package-lock.json')), { state: 'skipped', reason: 'lock-file' });
      assert.deepEqual(await index.explainFile(at('src/debug.log')), { state: 'excluded', by: 'gitignore' });
      assert.deepEqual(await index.explainFile(at('dist/out.js')), { state: 'excluded', by: 'default-exclude', pattern: '**/dist/**' });
      assert.deepEqual(await index.explainFile(at('.vscode/settings.json')), { state: 'excluded', by: 'default-exclude', pattern: '**/.vscode/**' });
      assert.deepEqual(await index.explainFile(at('docs/guide.ts')), { state: 'excluded', by: 'exclude', pattern: 'docs/**' });
      assert.deepEqual(await index.explainFile(at('tools/gen.ts')), { state: 'excluded', by: 'include' });
      assert.deepEqual(await index.explainFile(at('fresh.ts')), { state: 'not-indexed' });
      assert.deepEqual(await index.explainFile(path.join(outside, 'elsewhere.ts')), { state: 'outside-roots' });
      assert.deepEqual(await index.explainFile(at('src/no-such-file.ts')), { state: 'missing' });
    } finally {
      await index.close();
    }
  } finally {
    tree.cleanup();
    rmSync(dir, { recursive: true, force: true });
    rmSync(outside, { recursive: true, force: true });
  }
});
