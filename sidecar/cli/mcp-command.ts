import { Console } from 'node:console';
import { StdioServerTransport } from '@modelcontextprotocol/sdk/server/stdio.js';
import type { Command } from 'commander';
import { IndexSearcher } from '../agent/index-searcher';
import { createMcpServer } from '../agent/mcp-server';
import { WorkspaceIndex } from '../index/workspace-index';
import { assertQueryTowerFor } from '../server/model-catalog';
import { addIndexDirOption, displayPath } from './index-dir';
import { addModelOptions, encoderFromOptions, type ModelCliOptions } from './model-options';

interface McpCliOptions extends ModelCliOptions {
  indexDir: string;
  queryModel?: string;
}

export function registerMcpCommand(program: Command): void {
  const cmd = program
    .command('mcp')
    .description('serve the index to LLM agents: a Model Context Protocol server on stdin/stdout with the tools search_code and related_code')
    .option('--query-model <dir>', 'query tower trained on this index (`train --mode query-tower`) that embeds the queries; default: the index\'s own encoder');
  addIndexDirOption(cmd);
  addModelOptions(cmd);
  cmd.action(async (opts: McpCliOptions) => {
    // stdout carries the protocol: a stray console.log (ours or a library's) would corrupt it, so all of it goes to stderr.
    globalThis.console = new Console(process.stderr, process.stderr);
    const log = (line: string) => process.stderr.write(`replug-code mcp: ${line}\n`);
    // A wrong --query-model fails the start, where an MCP client shows it, when the index already exists;
    // otherwise the tools report it once an index is there.
    if (opts.queryModel && (await WorkspaceIndex.readManifest(opts.indexDir))) await assertQueryTowerFor(opts.queryModel, opts.indexDir);

    const searcher = new IndexSearcher({
      indexDir: opts.indexDir,
      model: opts.model,
      queryModel: opts.queryModel,
      loadEncoder: async (model, precision) => {
        log(`loading encoder ${model}`);
        return (await encoderFromOptions({ ...opts, model, precision: opts.precision ?? precision }))!;
      },
    });
    const server = createMcpServer({
      search: (params) => searcher.search(params),
      displayPath,
      onError: (tool, message) => log(`${tool} failed: ${message}`),
    });
    const closed = new Promise<void>((resolve) => {
      server.server.onclose = resolve;
      process.stdin.once('end', resolve);
      process.once('SIGTERM', resolve);
      process.once('SIGINT', resolve);
    });
    await server.connect(new StdioServerTransport());
    log(`serving ${opts.indexDir}${opts.queryModel ? ` with the query model ${opts.queryModel}` : ''} on stdio`);
    await closed;
    await server.close();
    await searcher.close();
  });
}
