import * as vscode from 'vscode';
import { abstentionLines } from '../sidecar/eval/abstention-text';
import { ndcgGainLines } from '../sidecar/eval/gain-text';
import type { EvalReport, ModelInfo } from '../sidecar/server/protocol';
import type { Config } from './config';
import type { LmAccess } from './lm-access';
import { queryAtCursor } from './locations';
import { log } from './log';
import { reportFailure } from './notify';
import type { SidecarClient } from './sidecar-client';
import type { TrainingViewProvider } from './training-view';
import { notice, quickPickText } from './untrusted-text';

/** Where the chosen query encoder is remembered, so a restarted sidecar searches with it again. */
export const QUERY_MODEL_KEY = 'replugCode.queryModel';

export interface ModelCommandDeps {
  sidecar: SidecarClient;
  config: Config;
  lm: LmAccess;
  trainingView: TrainingViewProvider;
  workspaceState: vscode.Memento;
}

/** Evaluate, Compare, Use Model and the managed LM server: everything about models beyond training itself. */
export class ModelCommands {
  constructor(private readonly deps: ModelCommandDeps) {}

  async evaluate(): Promise<EvalReport | undefined> {
    const { sidecar, config, lm } = this.deps;
    const endpoint = await lm.endpoint('Evaluation');
    if (!endpoint) return undefined;
    return this.reportErrors('evaluation', async () => {
      const tuned = await this.tunedModel();
      const { k, maxQueries, queries } = config.evaluation();
      const report = await sidecar.evaluate({ lm: endpoint, tuned: tuned?.path, k, ensembleK: k, maxQueries, queries });
      const doc = await vscode.workspace.openTextDocument({ language: 'markdown', content: reportMarkdown(report, tuned) });
      await vscode.commands.executeCommand('markdown.showPreview', doc.uri);
      return report;
    });
  }

  /** Base and tuned top-k for a query (the argument, else an input box seeded with the selection), side by side. */
  async compare(query?: unknown): Promise<void> {
    const { sidecar, config, trainingView } = this.deps;
    const tuned = await this.tunedModel();
    if (!tuned) {
      void vscode.window.showInformationMessage('REPLUG: there is no trained model to compare with yet: run "REPLUG: Train Retriever (LSR)" first.');
      return;
    }
    const editor = vscode.window.activeTextEditor;
    const text =
      typeof query === 'string'
        ? query
        : await vscode.window.showInputBox({
            title: `REPLUG: Compare base vs ${tuned.runId}`,
            prompt: 'Code or a description to retrieve for',
            value: editor && !editor.selection.isEmpty ? queryAtCursor(editor).query : '',
          });
    if (!text?.trim()) return;
    await this.reportErrors('comparison', async () => {
      const result = await sidecar.compare({ query: text, tuned: tuned.path, k: config.k });
      await trainingView.showComparison(text, tuned.runId, result);
    });
  }

  async useModel(): Promise<void> {
    const { sidecar, workspaceState } = this.deps;
    const { models, active } = await sidecar.listModels();
    type Item = vscode.QuickPickItem & { model?: string; runId?: string };
    const items: Item[] = [
      { label: '$(database) Base encoder', description: active ? '' : 'in use', detail: 'The encoder the index was built with' },
      ...models.map((m): Item => ({
        label: `$(sparkle) ${quickPickText(m.runId)}`,
        description: m.path === active ? 'in use' : modelSummary(m),
        detail: m.fitsIndex ? quickPickText(m.path) : `Not usable here: ${m.trained ? 'trained against other vectors or in shared mode' : 'stopped before the end (resume to finish)'}`,
        model: m.fitsIndex ? m.path : undefined,
        runId: m.runId,
      })),
    ];
    const picked = await vscode.window.showQuickPick(items, { title: 'REPLUG: Query encoder for searches', placeHolder: 'Pick a trained model, or the base encoder' });
    if (!picked || (picked !== items[0] && !picked.model)) return;
    await this.reportErrors('switching the model', async () => {
      const result = await sidecar.useModel(picked.model);
      await workspaceState.update(QUERY_MODEL_KEY, result.active);
      void vscode.window.showInformationMessage(
        result.active ? notice`REPLUG: searches now use the tuned model ${picked.runId}.` : 'REPLUG: searches now use the base encoder.',
      );
    });
  }

  async startLm(): Promise<void> {
    const { sidecar, lm } = this.deps;
    const params = await lm.serverParams(vscode.workspace.workspaceFolders?.[0]?.uri.fsPath);
    if (!params) return;
    const title = notice`REPLUG: Starting ${params.command?.[0] ?? 'vLLM'}… (first start can take minutes)`;
    await this.reportErrors('starting the LM server', async () => {
      const status = await vscode.window.withProgress({ location: vscode.ProgressLocation.Notification, title }, () => sidecar.startLm(params));
      // Training and evaluation use it while it runs (the setting is left alone).
      lm.useManagedServer(status.baseUrl);
      log.info(`LM server ${status.pid} serves ${status.models?.join(', ')} at ${status.baseUrl}`);
      void vscode.window.showInformationMessage(notice`REPLUG: LM server ready at ${status.baseUrl} (${status.models?.join(', ')}).`);
    });
  }

  async stopLm(): Promise<void> {
    const status = await this.deps.sidecar.stopLm();
    this.deps.lm.useManagedServer(undefined);
    void vscode.window.showInformationMessage(status.running ? 'REPLUG: the LM server is still running.' : 'REPLUG: LM server stopped.');
  }

  /** The model in use for searches, else the newest finished model that fits the index. */
  private async tunedModel(): Promise<ModelInfo | undefined> {
    const { models, active } = await this.deps.sidecar.listModels();
    return models.find((m) => m.path === active) ?? models.find((m) => m.trained && m.fitsIndex);
  }

  private async reportErrors<T>(what: string, run: () => Promise<T>): Promise<T | undefined> {
    try {
      return await run();
    } catch (err) {
      void reportFailure(what, err);
      return undefined;
    }
  }
}

function modelSummary(m: ModelInfo): string {
  return m.trained ? `${m.mode}, ${m.step} steps` : 'stopped early';
}

/** The report as a markdown table; numbers only, so nothing in it needs escaping. */
export function reportMarkdown(r: EvalReport, tuned: ModelInfo | undefined): string {
  const f = (x: number | undefined) => (x === undefined ? '–' : x.toFixed(3));
  const rows = r.retrievers.map(
    (s) => `| ${s.name} | ${f(s.teacher.ndcg)} | ${f(s.teacher.recall)} | ${f(s.teacher.mrr)} | ${f(s.contains?.ndcg)} | ${f(s.contains?.recall)} | ${f(s.bitsPerByte)} |`,
  );
  return [
    '# REPLUG retriever evaluation',
    '',
    `${r.queries} held-out queries, k = ${r.k}${tuned ? `; tuned = \`${tuned.runId}\`` : ''}.`,
    'Teacher gold: the passage the LM scores best. Content gold: passages containing a line of the continuation.',
    '',
    `| retriever | nDCG@${r.k} (teacher) | recall@${r.k} (teacher) | MRR (teacher) | nDCG@${r.k} (content) | recall@${r.k} (content) | bits/byte |`,
    '|---|---|---|---|---|---|---|',
    `| no retrieval | | | | | | ${f(r.noRetrievalBitsPerByte)} |`,
    ...rows,
    '',
    ...[...ndcgGainLines(r), ...abstentionLines(r)].map((l) => `${l}\n`),
  ].join('\n');
}
