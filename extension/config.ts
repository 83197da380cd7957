import * as vscode from 'vscode';
import type {
  CompletionMode,
  InitializationOptions,
  LmEndpoint,
  QuerySelection,
  SearchMode,
  StartLmParams,
  TrainingSettings,
} from '../sidecar/server/protocol';
import type { SettingLayers } from './lm-trust';

export const SECTION = 'replugCode';

/** The settings that choose where code and the API key go, or what runs: a workspace's values need approval. */
export type LmSettingKey = 'lm.baseUrl' | 'lm.model' | 'lm.serverCommand';

/** Settings the sidecar reads only at start; changing one restarts it (and re-indexes). */
const SIDECAR_SETTINGS = [
  `${SECTION}.encoder`,
  `${SECTION}.chunking`,
  `${SECTION}.include`,
  `${SECTION}.exclude`,
  `${SECTION}.keep`,
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

  get hoverAbstains(): boolean {
    return this.raw.get<boolean>('hover.abstain', true);
  }

  inlineCompletion(): { enabled: boolean; mode: CompletionMode; k: number; maxTokens: number } {
    return {
      enabled: this.raw.get<boolean>('inlineCompletion.enabled', false),
      mode: this.raw.get<CompletionMode>('inlineCompletion.mode', 'replug'),
      k: this.raw.get<number>('inlineCompletion.k', 4),
      maxTokens: this.raw.get<number>('inlineCompletion.maxTokens', 32),
    };
  }

  /** The LM teacher's endpoint, without the API key (which comes from SecretStorage, never from settings). */
  lmEndpoint(): LmEndpoint {
    return {
      baseUrl: this.raw.get<string>('lm.baseUrl', ''),
      model: this.raw.get<string>('lm.model', ''),
      concurrency: this.raw.get<number>('lm.concurrency', 8),
    };
  }

  /** Every layer (default, user, workspace, folder) of one of the LM settings, to tell who chose its value. */
  lmSettingLayers(key: LmSettingKey): SettingLayers<unknown> | undefined {
    return this.raw.inspect(key);
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
        abstain: this.raw.get<boolean>('training.abstain', false),
      },
      queries: { perFile: t('queriesPerFile'), trainFraction: t('trainFileShare') },
    };
  }

  evaluation(): { k: number; maxQueries: number; queries: QuerySelection } {
    return {
      k: this.raw.get<number>('eval.k', 10),
      maxQueries: this.raw.get<number>('eval.maxQueries', 50),
      // The training share goes too: evaluation files are drawn after it, so they are never files trained on.
      queries: {
        perFile: this.raw.get<number>('training.queriesPerFile'),
        trainFraction: this.raw.get<number>('training.trainFileShare'),
        evalFraction: this.raw.get<number>('eval.fileShare'),
      },
    };
  }

  /** What the sidecar is started with; `indexDir` comes from the extension's workspace storage. */
  sidecarOptions(indexDir: string, queryModel?: string): InitializationOptions {
    const { strategy, ...windows } = this.raw.get<NonNullable<InitializationOptions['chunking']>>('chunking', {});
    // The strategy only when the user chose one: an index otherwise keeps the one it was built with (see README: Chunking).
    const layers = this.raw.inspect('chunking.strategy');
    const chosen = [layers?.globalValue, layers?.workspaceValue, layers?.workspaceFolderValue].some((v) => v !== undefined);
    const chunking = chosen ? { ...windows, strategy } : windows;
    const include = this.raw.get<string[]>('include', []);
    return {
      indexDir,
      encoderModel: this.raw.get<string>('encoder.model', '') || undefined,
      encoderDevice: this.raw.get<InitializationOptions['encoderDevice']>('encoder.device', 'auto'),
      encoderPrecision: this.raw.get<InitializationOptions['encoderPrecision']>('encoder.precision', 'auto'),
      chunking,
      include: include.length ? include : undefined,
      exclude: [...this.raw.get<string[]>('exclude', []), ...filesExcludeGlobs()],
      keep: this.raw.get<string[]>('keep', []),
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
