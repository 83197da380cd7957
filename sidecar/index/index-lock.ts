import { readFileSync } from 'node:fs';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';

/**
 * One writer per index directory (the CLI and the editor's sidecar may point at the same one).
 * Hand-written rather than proper-lockfile: an index lives on the local disk of one machine, so the owner's pid
 * is an exact staleness test, where an mtime heartbeat would misjudge a writer blocked in a long native call.
 * Beside the pid the LOCK file records the owner's start time where /proc has it (Linux): after a crash the pid may
 * be reused by an unrelated process, which must not block indexing forever.
 */
export class IndexLock {
  private constructor(private readonly file: string) {}

  static async acquire(indexDir: string): Promise<IndexLock> {
    await fs.mkdir(indexDir, { recursive: true });
    const file = path.join(indexDir, 'LOCK');
    const clear = `if no replug-code process is using the index, delete ${file}`;
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        await fs.writeFile(file, `${process.pid} ${processStart(process.pid) ?? ''}\n`, { flag: 'wx' });
        return new IndexLock(file);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
        const owner = parseOwner(await fs.readFile(file, 'utf8').catch(() => ''));
        if (owner && isRunning(owner)) {
          const self = owner.pid === process.pid ? ' (this one)' : '';
          const unsure = owner.started === undefined ? `; ${clear}` : '';
          throw new Error(`The index at ${indexDir} is in use by process ${owner.pid}${self}. Wait for it to finish or stop it, then retry${unsure}.`);
        }
        // The owner died without unlocking (crash, SIGKILL), or its pid now belongs to another process: stale.
        await fs.rm(file, { force: true });
      }
    }
    throw new Error(`Could not lock the index at ${indexDir}: ${clear}.`);
  }

  async release(): Promise<void> {
    await fs.rm(this.file, { force: true });
  }
}

interface LockOwner {
  pid: number;
  /** The owner's start time in clock ticks since boot (/proc/PID/stat field 22); absent without /proc. */
  started?: string;
}

function parseOwner(text: string): LockOwner | undefined {
  const [pid, started] = text.trim().split(/\s+/);
  const n = Number(pid);
  if (!Number.isInteger(n) || n <= 0) return undefined;
  return started ? { pid: n, started } : { pid: n };
}

function isRunning(owner: LockOwner): boolean {
  if (!isAlive(owner.pid)) return false;
  if (owner.started === undefined) return true;
  const started = processStart(owner.pid);
  return started === undefined || started === owner.started;
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Field 22 of /proc/PID/stat, counted after the command name (which may hold spaces and parentheses). */
function processStart(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
  } catch {
    return undefined;
  }
}
