import { Option, type Command } from 'commander';
import { SingleBar, Presets } from 'cli-progress';
import type { Encoder } from '../encoder/encoder';
import { DEVICE_CHOICES, noticeOnce } from '../encoder/cuda-provider';
import { DEFAULT_BATCH_SIZE, loadEncoder, type Device } from '../encoder/ort-encoder';
import { PRECISION_CHOICES, type PrecisionChoice } from '../encoder/precision';
import type { DownloadProgress } from '../encoder/model-source';
import { positiveInt } from './option-parsers';

export interface ModelCliOptions {
  model?: string;
  device?: Device;
  precision?: PrecisionChoice;
  batchSize?: number;
}

/** Adds --model, --device, --precision and --batch-size to a command; `precisionDefault` describes the default. */
export function addModelOptions(cmd: Command, precisionDefault = 'auto: fp16 on CUDA, else fp32; int8 is about 2× faster on a CPU'): Command {
  return cmd
    .option('--model <pathOrId>', 'sentence encoder: model folder, .onnx file, or hub id (e.g. sentence-transformers/all-MiniLM-L6-v2)')
    .addOption(new Option('--device <device>', 'where the encoder runs (auto: CUDA, else WebGPU on an NVIDIA GPU, else CPU)').choices(DEVICE_CHOICES).default('auto'))
    .addOption(new Option('--precision <precision>', `encoder graph precision (default ${precisionDefault})`).choices(PRECISION_CHOICES))
    .option('--batch-size <n>', `texts per encoder run (default: ${DEFAULT_BATCH_SIZE})`, positiveInt);
}

/** Loads the encoder the options name (drawing a download bar on stderr); undefined when no --model was given. */
export async function encoderFromOptions(opts: ModelCliOptions): Promise<Encoder | undefined> {
  if (!opts.model) return undefined;
  const bars = new DownloadBars();
  try {
    const encoder = await loadEncoder({
      model: opts.model,
      device: opts.device,
      precision: opts.precision,
      batchSize: opts.batchSize,
      onDownloadProgress: (p) => bars.update(p),
    });
    noticeOnce(encoder.fallbackReason, (line) => process.stderr.write(`${line}\n`));
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
