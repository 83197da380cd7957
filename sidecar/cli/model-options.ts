import { Option, type Command } from 'commander';
import { SingleBar, Presets } from 'cli-progress';
import type { Encoder } from '../encoder/encoder';
import { loadEncoder, type Device } from '../encoder/ort-encoder';
import type { DownloadProgress } from '../encoder/model-source';
import { positiveInt } from './option-parsers';

export interface ModelCliOptions {
  model?: string;
  device?: Device;
  batchSize?: number;
}

/** Adds --model, --device and --batch-size to a command. */
export function addModelOptions(cmd: Command): Command {
  return cmd
    .option('--model <pathOrId>', 'sentence encoder: model folder, .onnx file, or hub id (e.g. sentence-transformers/all-MiniLM-L6-v2)')
    .addOption(new Option('--device <device>', 'where the encoder runs').choices(['auto', 'cuda', 'cpu']).default('auto'))
    .option('--batch-size <n>', 'texts per encoder run', positiveInt);
}

/** Loads the encoder the options name (drawing a download bar on stderr); undefined when no --model was given. */
export async function encoderFromOptions(opts: ModelCliOptions): Promise<Encoder | undefined> {
  if (!opts.model) return undefined;
  const bars = new DownloadBars();
  try {
    const encoder = await loadEncoder({
      model: opts.model,
      device: opts.device,
      batchSize: opts.batchSize,
      onDownloadProgress: (p) => bars.update(p),
    });
    if (encoder.fallbackReason) process.stderr.write(`${encoder.fallbackReason}\n`);
    return encoder;
  } finally {
    bars.stop();
  }
}

/** One bar per downloaded file, replaced when the next file starts; without a terminal, a line per file and per 10 %. */
class DownloadBars {
  private bar: SingleBar | undefined;
  private file: string | undefined;
  private lastTenth = -1;

  update(p: DownloadProgress): void {
    if (!process.stderr.isTTY) {
      const tenth = p.total ? Math.floor((10 * p.received) / p.total) : 0;
      if (p.file === this.file && tenth === this.lastTenth) return;
      this.file = p.file;
      this.lastTenth = tenth;
      const size = p.total ? ` ${(p.received / 1e6).toFixed(1)}/${(p.total / 1e6).toFixed(1)} MB` : '';
      process.stderr.write(`downloading ${p.file}:${size}${p.total ? ` (${tenth * 10}%)` : ''}\n`);
      return;
    }
    if (p.file !== this.file) {
      this.stop();
      this.file = p.file;
      this.bar = new SingleBar({ format: `${p.file} |{bar}| {percentage}% {value}/{total} bytes`, stream: process.stderr }, Presets.shades_classic);
      this.bar.start(p.total ?? 0, p.received);
    }
    if (p.total !== undefined) this.bar?.setTotal(p.total);
    this.bar?.update(p.received);
  }

  stop(): void {
    this.bar?.stop();
    this.bar = undefined;
  }
}
