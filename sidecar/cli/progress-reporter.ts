import { SingleBar, Presets } from 'cli-progress';
import type { IndexProgress } from '../index/workspace-index';
import { count } from './count';

/**
 * Index progress for a terminal: a live bar on a TTY, otherwise a plain line every few seconds
 * (CI logs and pipes get readable output instead of carriage-return noise).
 */
export class ProgressReporter {
  private bar: SingleBar | undefined;
  private phase: IndexProgress['phase'] | undefined;
  private lastLine = 0;

  constructor(private readonly stream: NodeJS.WriteStream = process.stderr) {}

  update(p: IndexProgress): void {
    if (this.stream.isTTY) this.updateBar(p);
    else this.updateLines(p);
  }

  stop(): void {
    this.bar?.stop();
    this.bar = undefined;
  }

  private updateBar(p: IndexProgress): void {
    if (p.passagesToEmbed > 0) {
      if (!this.bar) {
        this.bar = new SingleBar(
          {
            format: `embedding |{bar}| {value}/{total} passages · ${p.rows > 0 ? '{rows} corpus rows read' : '{files} files scanned'} · eta {eta_formatted}`,
            stream: this.stream,
          },
          Presets.shades_classic,
        );
        this.bar.start(p.passagesToEmbed, p.passagesEmbedded, { files: p.files, rows: p.rows });
      }
      this.bar.setTotal(p.passagesToEmbed);
      this.bar.update(p.passagesEmbedded, { files: p.files, rows: p.rows });
    } else if (p.phase === 'scan') {
      this.stream.write(`\rscanning… ${read(p)}`);
    }
    if (p.phase === 'save' && this.phase !== 'save') {
      this.stop();
      this.stream.write('\nsaving…\n');
    }
    this.phase = p.phase;
  }

  private updateLines(p: IndexProgress): void {
    const now = Date.now();
    if (p.phase === this.phase && now - this.lastLine < 5000) return;
    this.phase = p.phase;
    this.lastLine = now;
    const embed = p.passagesToEmbed > 0 ? `, ${p.passagesEmbedded}/${p.passagesToEmbed} passages embedded` : '';
    this.stream.write(`${p.phase}: ${read(p)}${embed}\n`);
  }
}

/** "12 files", "3000 corpus rows", or both. */
function read(p: IndexProgress): string {
  const parts = [p.files > 0 || p.rows === 0 ? count(p.files, 'file') : '', p.rows > 0 ? count(p.rows, 'corpus row') : ''];
  return parts.filter(Boolean).join(', ');
}
