import { SingleBar, Presets } from 'cli-progress';

/**
 * Progress of a run counted in units (training steps, evaluation queries) on stderr: a live bar with an ETA on a
 * terminal; otherwise plain lines (every unit, or at most every few seconds), so CI logs and pipes show that a long
 * run is alive and when it will end.
 */
export class RunProgress {
  private bar: SingleBar | undefined;
  private started = 0;
  private first = 0;
  private lastLine = 0;

  constructor(
    private readonly label: string,
    private readonly total: number,
    /** Plain-line mode: print every unit (training steps carry their metrics), else at most every 5 s. */
    private readonly everyUnit = false,
    private readonly stream: NodeJS.WriteStream = process.stderr,
  ) {}

  /** `done` units are already done (a resumed run); the rate and ETA count from here. */
  start(done = 0): void {
    this.started = Date.now();
    this.first = done;
    if (this.stream.isTTY) {
      this.bar = new SingleBar(
        { format: `${this.label} |{bar}| {value}/{total} {fields} · eta {eta_formatted}`, stream: this.stream, etaBuffer: 20, hideCursor: true },
        Presets.shades_classic,
      );
      this.bar.start(this.total, done, { fields: '' });
    }
  }

  /** `fields`: a short text after the count (e.g. the loss). */
  update(done: number, fields = ''): void {
    if (this.bar) {
      this.bar.update(done, { fields });
      return;
    }
    const now = Date.now();
    if (!this.everyUnit && done < this.total && now - this.lastLine < 5000) return;
    this.lastLine = now;
    const perUnit = (now - this.started) / 1000 / Math.max(1, done - this.first);
    const eta = done < this.total ? ` · eta ${formatDuration(perUnit * (this.total - done))}` : '';
    this.stream.write(`${this.label} ${done}/${this.total}${fields ? ` ${fields}` : ''}${eta}\n`);
  }

  stop(): void {
    this.bar?.stop();
    this.bar = undefined;
  }
}

/** 75 → "1m15s"; 4000 → "1h07m". */
export function formatDuration(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}
