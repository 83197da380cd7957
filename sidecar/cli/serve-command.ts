import type { Command } from 'commander';
import { CompletionServer } from '../generate/openai-server';
import { WorkspaceIndex } from '../index/workspace-index';
import { addGenerateOptions, generatorFromOptions, type GenerateCliOptions } from './generate-options';
import { port } from './option-parsers';
import type { QueryIndex } from './query-index';

interface ServeCliOptions extends GenerateCliOptions {
  port: number;
  host: string;
  apiKey?: string;
  name?: string;
}

/** How often a request may check whether another process saved a new index generation. */
const RELOAD_CHECK_MS = 2000;

/**
 * `serve`: an OpenAI-compatible completions endpoint in front of the user's LM server that retrieves from the
 * index and ensembles (REPLUG), so any OpenAI client gets completions grounded in this workspace.
 */
export function registerServeCommand(program: Command): void {
  const cmd = program
    .command('serve')
    .description('serve REPLUG completions over this index as an OpenAI-compatible API (/v1/completions, /v1/models) in front of the LM server')
    .option('--port <n>', 'port to listen on (0 picks a free one)', port, 8100)
    .option('--host <host>', 'address to listen on (anything but loopback exposes the index to the network)', '127.0.0.1')
    .option('--api-key <key>', 'clients must send it as "Authorization: Bearer <key>" (default: $REPLUG_SERVE_API_KEY)')
    .option('--name <model>', 'model id clients ask for (default: the LM model name)');
  addGenerateOptions(cmd, 4096);
  cmd.options.find((o) => o.long === '--max-tokens')!.description = 'largest max_tokens a request may ask for';
  cmd.action(async (opts: ServeCliOptions) => {
    // Read here rather than as the option's default, which --help would print.
    const apiKey = opts.apiKey ?? process.env.REPLUG_SERVE_API_KEY;
    const { generator, index } = await generatorFromOptions(opts);
    // Fails early, with the upstream's own words, when the LM server is down or does not serve the model.
    await generator.upstream.capabilities();
    const server = new CompletionServer({
      generator,
      modelName: opts.name ?? generator.upstream.model,
      mode: opts.mode,
      k: opts.k,
      apiKey,
      maxTokensLimit: opts.maxTokens,
    });
    const stopReloading = index ? reloadOnChange(opts.indexDir, index) : () => undefined;
    const url = await server.listen(opts.port, opts.host);
    if (!/^(127\.|\[::1\]|localhost)/.test(new URL(url).hostname) && !apiKey) {
      process.stderr.write(`serve: listening on ${opts.host} without --api-key: anyone who can reach it can read this index through completions\n`);
    }
    console.log(`serve: ${opts.mode} completions (k ${opts.k}) of "${opts.lmModel}" at ${opts.lmUrl} over ${index ? opts.indexDir : 'no index'}, as model "${opts.name ?? opts.lmModel}" at ${url} (Ctrl-C to stop)`);
    await new Promise<void>((resolve) => {
      const stop = () => void server.close().then(resolve);
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
    });
    stopReloading();
    await index?.close();
  });
}

/** Reopens the index whenever another process (an `index` run, the editor) saves a new generation of it. */
function reloadOnChange(indexDir: string, index: QueryIndex): () => void {
  let seen = index.index.storedManifest()?.updatedAt;
  const timer = setInterval(() => {
    void WorkspaceIndex.readManifest(indexDir)
      .then(async (manifest) => {
        if (!manifest || manifest.updatedAt === seen) return;
        seen = manifest.updatedAt;
        await index.reopen();
        console.log(`serve: reloaded the index (${manifest.passages} passages, saved ${manifest.updatedAt})`);
      })
      .catch((err: Error) => process.stderr.write(`serve: keeping the loaded index: ${err.message}\n`));
  }, RELOAD_CHECK_MS);
  timer.unref();
  return () => clearInterval(timer);
}
