import * as vscode from 'vscode';
import type { InitializationOptions, SearchMode } from '../sidecar/server/protocol';

export const SECTION = 'replugCode';

/** Settings the sidecar reads only at start; changing one restarts it (and re-indexes). */
const SIDECAR_SETTINGS = [
  `${SECTION}.encoder`,
  `${SECTION}.chunking`,
  `${SECTION}.include`,
  `${SECTION}.exclude`,
  'files.exclude',
];

/** Typed view of the `replugCode.*` settings (declared in package.json `contributes.configuration`). */
export class Config {
  private get raw(): vscode.WorkspaceConfiguration {
    return vscode.workspace.getConfiguration(SECTION);
  }

  get k(): number {
    return Math.max(1, Math.floor(this.raw.get<number>('search.k', 10)));
  }

  get mode(): SearchMode | undefined {
    const mode = this.raw.get<string>('search.mode', 'auto');
    return mode === 'auto' ? undefined : (mode as SearchMode);
  }

  get hoverEnabled(): boolean {
    return this.raw.get<boolean>('hover.enabled', true);
  }

  /** What the sidecar is started with; `indexDir` comes from the extension's workspace storage. */
  sidecarOptions(indexDir: string): InitializationOptions {
    const chunking = this.raw.get<InitializationOptions['chunking']>('chunking', {});
    const include = this.raw.get<string[]>('include', []);
    return {
      indexDir,
      encoderModel: this.raw.get<string>('encoder.model', '') || undefined,
      encoderDevice: this.raw.get<'auto' | 'cpu' | 'cuda'>('encoder.device', 'auto'),
      chunking,
      include: include.length ? include : undefined,
      exclude: [...this.raw.get<string[]>('exclude', []), ...filesExcludeGlobs()],
    };
  }

  static affectsSidecar(e: vscode.ConfigurationChangeEvent): boolean {
    return SIDECAR_SETTINGS.some((key) => e.affectsConfiguration(key));
  }
}

/**
 * `files.exclude` as globs for the walker. VS Code's patterns match a folder and thereby hide its contents;
 * the walker matches file paths, so each pattern also gets a `/**` twin.
 */
function filesExcludeGlobs(): string[] {
  const patterns = vscode.workspace.getConfiguration('files').get<Record<string, unknown>>('exclude', {});
  return Object.entries(patterns)
    .filter(([, on]) => on === true)
    .flatMap(([glob]) => [glob, `${glob}/**`]);
}
