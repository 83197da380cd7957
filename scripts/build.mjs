// Bundles the extension host entry and the sidecar entries; native modules stay external
// because their .node binaries must be loaded from node_modules at run time.
import { copyFile, mkdir } from 'node:fs/promises';
import { build } from 'esbuild';

// tsx/cjs: only the server's run-from-source path (never taken in a bundle) resolves it, for its worker.
// @vscode/tree-sitter-wasm: its runtime finds tree-sitter.wasm and the grammars beside its own file, and is required
// only when syntax chunking is on.
const external = ['vscode', 'hnswlib-node', 'onnxruntime-node', 'sharp', 'tsx/cjs', '@vscode/tree-sitter-wasm'];
const common = { bundle: true, platform: 'node', target: 'node20', format: 'cjs', sourcemap: true, external, logLevel: 'warning' };

await build({
  ...common,
  entryPoints: {
    cli: 'sidecar/cli/main.ts',
    extension: 'extension/extension.ts',
    server: 'sidecar/server/main.ts',
    // Loaded by the server as a worker thread, so it must be its own file beside server.js.
    'train-worker': 'sidecar/server/train-worker.ts',
  },
  outdir: 'dist',
});

// The training view's chart library, served to the webview from the package itself (its CSP allows no CDN).
await mkdir('dist/webview', { recursive: true });
for (const file of ['uPlot.iife.min.js', 'uPlot.min.css']) await copyFile(`node_modules/uplot/dist/${file}`, `dist/webview/${file}`);
