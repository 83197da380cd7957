// Bundles the extension host entry and the sidecar entries; native modules stay external
// because their .node binaries must be loaded from node_modules at run time.
import { build } from 'esbuild';

const external = ['vscode', 'hnswlib-node', 'onnxruntime-node', 'sharp'];
const common = { bundle: true, platform: 'node', target: 'node20', format: 'cjs', sourcemap: true, external, logLevel: 'warning' };

await build({
  ...common,
  entryPoints: {
    cli: 'sidecar/cli/main.ts',
    extension: 'extension/extension.ts',
    server: 'sidecar/server/main.ts',
  },
  outdir: 'dist',
});
