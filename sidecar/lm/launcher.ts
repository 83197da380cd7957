import net from 'node:net';
import readline from 'node:readline';
import type { ResultPromise } from 'execa';

export const DEFAULT_LM_COMMAND = ['python', '-m', 'vllm.entrypoints.openai.api_server', '--model', '{model}', '--port', '{port}'];

export interface LaunchOptions {
  /** Program and arguments; `{model}`, `{port}` and `{host}` are substituted. Default: vLLM's OpenAI server. */
  command?: string[];
  /** Substituted for {model}; required by the default command. */
  model?: string;
  /** Default: a free port. */
  port?: number;
  /** Where the server listens and is polled; default 127.0.0.1. */
  host?: string;
  cwd?: string;
  env?: Record<string, string>;
  /** Each line the server prints. */
  onLog?: (line: string, stream: 'stdout' | 'stderr') => void;
  /** How long to wait for GET /v1/models to answer; default 10 minutes (vLLM loads and compiles the model first). */
  readyTimeoutMs?: number;
  /** Between SIGTERM and SIGKILL when stopping; default 10 s. */
  stopGraceMs?: number;
}

export interface LaunchedLm {
  /** OpenAI base URL, http://host:port/v1. */
  baseUrl: string;
  /** Model ids the server lists. */
  models: string[];
  /** Process id of the command; also its process-group id. */
  pid: number;
  /** SIGTERM to the whole process group, SIGKILL after the grace period; resolves once the group is gone. */
  stop(): Promise<void>;
}

const LOG_TAIL_LINES = 20;
const POLL_MS = 250;

async function freePort(host: string): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve, reject) => server.once('error', reject).listen(0, host, resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

function groupAlive(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
    return true;
  } catch {
    return false;
  }
}

function signalGroup(pgid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pgid, signal);
  } catch {
    // already gone
  }
}

/**
 * Starts an LM server command in its own process group, streams its output, and resolves once /v1/models
 * answers. Fails fast when the command exits first, and stops the whole group on failure, on stop(), and when
 * this process exits, so no server is orphaned.
 */
export async function launchLm(options: LaunchOptions = {}): Promise<LaunchedLm> {
  const host = options.host ?? '127.0.0.1';
  const port = options.port ?? (await freePort(host));
  const template = options.command ?? DEFAULT_LM_COMMAND;
  if (template.length === 0) throw new Error('LM command is empty');
  if (template.some((arg) => arg.includes('{model}')) && !options.model) throw new Error('the LM command needs a model: pass one (e.g. --lm-model-path) or a command without {model}');
  const [file, ...args] = template.map((arg) => arg.replaceAll('{model}', options.model ?? '').replaceAll('{port}', String(port)).replaceAll('{host}', host));
  const baseUrl = `http://${host.includes(':') ? `[${host}]` : host}:${port}/v1`;

  // Loaded lazily: execa is ESM-only, and tsx's require hook cannot resolve its ESM-only dependencies statically.
  const { execa } = await import('execa');
  const child: ResultPromise = execa(file, args, {
    cwd: options.cwd,
    env: options.env,
    detached: true, // own process group, so stop() reaches servers that fork workers (vLLM does)
    stdin: 'ignore',
    buffer: false,
    reject: false,
  });
  const pid = child.pid;
  if (pid === undefined) {
    const result = await child;
    throw new Error(`could not start LM server \`${template[0]}\`: ${result.message ?? 'no pid'}`);
  }
  const tail: string[] = [];
  for (const stream of ['stdout', 'stderr'] as const) {
    const source = child[stream];
    if (!source) continue;
    readline.createInterface({ input: source }).on('line', (line) => {
      tail.push(line);
      if (tail.length > LOG_TAIL_LINES) tail.shift();
      options.onLog?.(line, stream);
    });
  }
  let exitCode: number | undefined | null = undefined;
  let exitSignal: string | undefined;
  const exited = child.then((result) => {
    exitCode = result.exitCode ?? null;
    exitSignal = result.signal;
  });
  const killOnExit = () => signalGroup(pid, 'SIGKILL');
  process.once('exit', killOnExit);

  let stopping: Promise<void> | undefined;
  const stop = () => {
    stopping ??= (async () => {
      signalGroup(pid, 'SIGTERM');
      const deadline = Date.now() + (options.stopGraceMs ?? 10_000);
      // Unref'd: once the group is gone, a pending grace timer must not keep this process alive.
      await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, Math.max(0, deadline - Date.now())).unref())]);
      // The leader may be gone while workers linger in its group.
      while (groupAlive(pid) && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50));
      signalGroup(pid, 'SIGKILL');
      await exited;
      process.removeListener('exit', killOnExit);
    })();
    return stopping;
  };

  const readyBy = Date.now() + (options.readyTimeoutMs ?? 600_000);
  const lastLines = () => (tail.length ? `; last output:\n${tail.join('\n')}` : '');
  while (Date.now() < readyBy) {
    if (exitCode !== undefined) {
      await stop();
      throw new Error(`LM server \`${template.join(' ')}\` exited (${exitSignal ?? `code ${exitCode}`}) before answering ${baseUrl}/models${lastLines()}`);
    }
    try {
      const response = await fetch(`${baseUrl}/models`, { signal: AbortSignal.timeout(2000) });
      if (response.ok) {
        const body = (await response.json()) as { data?: { id?: unknown }[] };
        const models = (body.data ?? []).map((m) => String(m.id));
        return { baseUrl, models, pid, stop };
      }
    } catch {
      // not listening yet
    }
    await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, POLL_MS))]);
  }
  await stop();
  throw new Error(`LM server \`${template.join(' ')}\` did not answer ${baseUrl}/models within ${options.readyTimeoutMs ?? 600_000} ms${lastLines()}`);
}
