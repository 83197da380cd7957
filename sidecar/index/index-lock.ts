import { promises as fs } from 'node:fs';
import * as path from 'node:path';

/**
 * One writer per index directory (the CLI and the editor's sidecar may point at the same one).
 * Hand-written rather than proper-lockfile: an index lives on the local disk of one machine, so the owner's pid
 * is an exact staleness test, where an mtime heartbeat would misjudge a writer blocked in a long native call.
 */
export class IndexLock {
  private constructor(private readonly file: string) {}

  static async acquire(indexDir: string): Promise<IndexLock> {
    await fs.mkdir(indexDir, { recursive: true });
    const file = path.join(indexDir, 'LOCK');
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        await fs.writeFile(file, `${process.pid}\n`, { flag: 'wx' });
        return new IndexLock(file);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
        const owner = Number((await fs.readFile(file, 'utf8').catch(() => '')).trim());
        if (Number.isInteger(owner) && owner > 0 && isAlive(owner)) {
          throw new Error(
            `The index at ${indexDir} is in use by process ${owner}${owner === process.pid ? " (this one)" : ""}. Wait for it to finish or stop it, then retry.`,
          );
        }
        // The owner died without unlocking (crash, SIGKILL): the lock is stale.
        await fs.rm(file, { force: true });
      }
    }
    throw new Error(`Could not lock the index at ${indexDir}; remove ${file} if no other replug-code process uses it.`);
  }

  async release(): Promise<void> {
    await fs.rm(this.file, { force: true });
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
