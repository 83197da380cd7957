import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream, existsSync } from 'node:fs';
import { mkdir, rename, stat, unlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';

/**
 * Turns `--model` into a local path: an existing folder or .onnx file as is, or a Hugging Face hub id
 * (`owner/name`) fetched once into the per-user cache.
 */

export interface DownloadProgress {
  file: string;
  received: number;
  /** Undefined when the server does not say. */
  total: number | undefined;
}

export interface ResolveOptions {
  /** Cache root for hub models (default `$REPLUG_CODE_CACHE/models` or `~/.cache/replug-code/models`). */
  cacheDir?: string;
  onProgress?: (p: DownloadProgress) => void;
}

/** What a sentence-transformers BERT folder needs; tokenizer.json falls back to vocab.txt in loadModelFolder. */
const REQUIRED_FILES = ['config.json', 'model.safetensors'];
const OPTIONAL_FILES = ['tokenizer.json', 'tokenizer_config.json', 'modules.json', '1_Pooling/config.json', 'sentence_bert_config.json'];
const COMPLETE_MARKER = '.replug-complete';
/** Attempts per file; each retry resumes from the bytes already on disk. */
const MAX_ATTEMPTS = 5;
const HUB_ID = /^[A-Za-z0-9][\w.-]*\/[\w.-]+$/;

function defaultCacheDir(): string {
  const root = process.env.REPLUG_CODE_CACHE ?? path.join(os.homedir(), '.cache', 'replug-code');
  return path.join(root, 'models');
}

/**
 * How a `--model` is recorded (in the index manifest) so that it names the same model from any folder: a local path
 * made absolute, a hub id as given.
 */
export function modelSpec(model: string): string {
  return existsSync(model) ? path.resolve(model) : model;
}

export async function resolveModel(model: string, opts: ResolveOptions = {}): Promise<string> {
  if (existsSync(model)) return path.resolve(model);
  if (!HUB_ID.test(model) || model.includes('..')) {
    throw new Error(`--model ${model}: no such file or folder, and not a hub id like sentence-transformers/all-MiniLM-L6-v2`);
  }
  const dir = path.join(opts.cacheDir ?? defaultCacheDir(), ...model.split('/'));
  if (existsSync(path.join(dir, COMPLETE_MARKER))) return dir;
  const endpoint = (process.env.HF_ENDPOINT ?? 'https://huggingface.co').replace(/\/+$/, '');
  try {
    const get = (file: string) => downloadFile(`${endpoint}/${model}/resolve/main/${file}`, path.join(dir, file), file, opts.onProgress);
    for (const file of REQUIRED_FILES) {
      if (!(await get(file))) {
        throw new Error(`${model} has no ${file} on ${endpoint}; only BERT-family models with safetensors weights can be downloaded`);
      }
    }
    for (const file of OPTIONAL_FILES) await get(file);
    if (!existsSync(path.join(dir, 'tokenizer.json')) && !(await get('vocab.txt'))) {
      throw new Error(`${model} has neither tokenizer.json nor vocab.txt on ${endpoint}`);
    }
  } catch (err) {
    if (isNetworkError(err)) {
      throw new Error(`no network (${endpoint}: ${networkCause(err)}): put the model folder at ${dir} or pass --model PATH`);
    }
    throw err;
  }
  await writeFile(path.join(dir, COMPLETE_MARKER), new Date().toISOString());
  return dir;
}

/** Fetches `url` to `dest` through `dest.part`, resuming with Range; false when the server has no such file. */
async function downloadFile(url: string, dest: string, file: string, onProgress?: (p: DownloadProgress) => void): Promise<boolean> {
  if (existsSync(dest)) return true;
  // HEAD without following the redirect: the hub puts the LFS size and sha256 on the redirect itself.
  const head = await fetch(url, { method: 'HEAD', redirect: 'manual' });
  if (head.status === 404) return false;
  if (head.status >= 400) throw new Error(`${url}: HTTP ${head.status}`);
  const expectedSize = numberHeader(head, 'x-linked-size') ?? (head.status < 300 ? numberHeader(head, 'content-length') : undefined);
  const sha256 = head.headers.get('x-linked-etag')?.replace(/^(W\/)?"|"$/g, '');
  const part = `${dest}.part`;
  await mkdir(path.dirname(dest), { recursive: true });
  for (let attempt = 1; ; attempt++) {
    const have = await sizeOf(part);
    try {
      await fetchInto(url, part, have, expectedSize, (received, total) => onProgress?.({ file, received, total }));
      break;
    } catch (err) {
      // An interrupted transfer is retried from where it stopped, as long as each attempt makes progress.
      if (attempt >= MAX_ATTEMPTS || (await sizeOf(part)) <= have) throw err;
    }
  }
  const size = await sizeOf(part);
  if (expectedSize !== undefined && size !== expectedSize) {
    await unlink(part);
    throw new Error(`${url}: got ${size} bytes, expected ${expectedSize}; run again to retry`);
  }
  if (sha256 && /^[0-9a-f]{64}$/.test(sha256) && (await sha256File(part)) !== sha256) {
    await unlink(part);
    throw new Error(`${url}: sha256 does not match the hub's (${sha256}); run again to retry`);
  }
  await rename(part, dest);
  return true;
}

async function fetchInto(url: string, part: string, have: number, expectedSize: number | undefined, progress: (r: number, t?: number) => void): Promise<void> {
  if (expectedSize !== undefined && have === expectedSize) return;
  const res = await fetch(url, { headers: have > 0 ? { Range: `bytes=${have}-` } : {} });
  if (res.status === 416) return; // the part file already holds everything; the size check decides
  if (!res.ok || !res.body) throw new Error(`${url}: HTTP ${res.status}`);
  const resumed = res.status === 206;
  const start = resumed ? have : 0; // a 200 answer to a Range request restarts the file
  const total = expectedSize ?? (resumed ? totalFromContentRange(res) : numberHeader(res, 'content-length'));
  let received = start;
  const body = Readable.fromWeb(res.body as import('node:stream/web').ReadableStream<Uint8Array>);
  body.on('data', (chunk: Buffer) => progress((received += chunk.length), total));
  await pipeline(body, createWriteStream(part, { flags: resumed ? 'a' : 'w' }));
}

async function sizeOf(file: string): Promise<number> {
  return existsSync(file) ? (await stat(file)).size : 0;
}

function numberHeader(res: Response, name: string): number | undefined {
  const v = res.headers.get(name);
  return v !== null && /^\d+$/.test(v) ? Number(v) : undefined;
}

function totalFromContentRange(res: Response): number | undefined {
  const m = /\/(\d+)$/.exec(res.headers.get('content-range') ?? '');
  return m ? Number(m[1]) : undefined;
}

async function sha256File(file: string): Promise<string> {
  const hash = createHash('sha256');
  await pipeline(createReadStream(file), hash);
  return hash.digest('hex');
}

/** fetch() rejects with TypeError('fetch failed') whose cause carries the socket error code. */
function isNetworkError(err: unknown): boolean {
  return err instanceof TypeError && err.message === 'fetch failed';
}

function networkCause(err: unknown): string {
  const cause = (err as { cause?: { code?: string; message?: string } }).cause;
  return cause?.code ?? cause?.message ?? String(err);
}
