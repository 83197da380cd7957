import * as vscode from 'vscode';
import type {
  InitializationOptions,
  LmEndpoint,
  QuerySelection,
  SearchMode,
  StartLmParams,
  TrainingSettings,
} from '../sidecar/server/protocol';

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

  /** The LM teacher's endpoint; the API key comes from SecretStorage, never from settings. */
  lmEndpoint(apiKey: string | undefined): LmEndpoint {
    return {
      baseUrl: this.raw.get<string>('lm.baseUrl', ''),
      model: this.raw.get<string>('lm.model', ''),
      apiKey,
      concurrency: this.raw.get<number>('lm.concurrency', 8),
    };
  }

  /** The managed LM server: the command (empty = vLLM's OpenAI server) serves `lm.model`. */
  lmServer(cwd: string | undefined): StartLmParams {
    const command = this.raw.get<string[]>('lm.serverCommand', []);
    return { command: command.length ? command : undefined, model: this.raw.get<string>('lm.model', '') || undefined, cwd };
  }

  training(): { settings: TrainingSettings; queries: QuerySelection } {
    const t = (key: string) => this.raw.get<number>(`training.${key}`);
    return {
      settings: {
        mode: this.raw.get<'query-tower' | 'shared'>('training.mode', 'query-tower'),
        k: t('k'),
        gamma: t('gamma'),
        beta: t('beta'),
        lr: t('lr'),
        steps: t('steps'),
        batchSize: t('batchSize'),
        refreshEvery: t('refreshEvery'),
        checkpointEvery: t('checkpointEvery'),
      },
      queries: { perFile: t('queriesPerFile'), trainFraction: t('trainFileShare') },
    };
  }

  evaluation(): { k: number; maxQueries: number; queries: QuerySelection } {
    return {
      k: this.raw.get<number>('eval.k', 10),
      maxQueries: this.raw.get<number>('eval.maxQueries', 50),
      queries: { perFile: this.raw.get<number>('training.queriesPerFile'), evalFraction: this.raw.get<number>('eval.fileShare') },
    };
  }

  /** What the sidecar is started with; `indexDir` comes from the extension's workspace storage. */
  sidecarOptions(indexDir: string, queryModel?: string): InitializationOptions {
    const chunking = this.raw.get<InitializationOptions['chunking']>('chunking', {});
    const include = this.raw.get<string[]>('include', []);
    return {
      indexDir,
      encoderModel: this.raw.get<string>('encoder.model', '') || undefined,
      encoderDevice: this.raw.get<InitializationOptions['encoderDevice']>('encoder.device', 'auto'),
      encoderPrecision: this.raw.get<InitializationOptions['encoderPrecision']>('encoder.precision', 'auto'),
      chunking,
      include: include.length ? include : undefined,
      exclude: [...this.raw.get<string[]>('exclude', []), ...filesExcludeGlobs()],
      queryModel,
      workspaceTrusted: vscode.workspace.isTrusted,
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
