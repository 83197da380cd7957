import { readFile } from 'node:fs/promises';
import os from 'node:os';
import { ModelFormatError } from './model-format-error';

/**
 * Reader and writer for the safetensors format: an 8-byte little-endian header length, a JSON header
 * `{ name: { dtype, shape, data_offsets: [begin, end] }, __metadata__? }`, then the raw little-endian tensor bytes.
 */

const BYTES_PER_ELEMENT: Record<string, number> = {
  F64: 8, F32: 4, F16: 2, BF16: 2, I64: 8, I32: 4, I16: 2, I8: 1, U64: 8, U32: 4, U16: 2, U8: 1, BOOL: 1,
  F8_E4M3: 1, F8_E5M2: 1,
};
/** The reference implementation refuses headers above 100 MB; anything larger is a corrupt length field. */
const MAX_HEADER_BYTES = 100 * 1024 * 1024;

export interface RawTensor {
  dtype: string;
  shape: number[];
  /** The tensor's bytes inside the file buffer (not a copy). */
  bytes: Uint8Array;
}

export interface SafetensorsData {
  metadata: Record<string, string>;
  tensors: Map<string, RawTensor>;
}

/** Float32 tensor as the writer takes it and `toFloat32` returns it. */
export interface Float32Tensor {
  shape: number[];
  data: Float32Array;
}

export async function readSafetensors(file: string): Promise<SafetensorsData> {
  return parseSafetensors(await readFile(file), file);
}

/** Parses and validates a whole safetensors buffer; `file` only names the source in errors. */
export function parseSafetensors(buf: Uint8Array, file: string): SafetensorsData {
  if (os.endianness() !== 'LE') throw new ModelFormatError(file, 'safetensors needs a little-endian CPU');
  const fail = (problem: string): never => {
    throw new ModelFormatError(file, `${problem} (not a valid safetensors file; download it again)`);
  };
  if (buf.byteLength < 8) fail(`file is ${buf.byteLength} bytes, shorter than the 8-byte header length`);
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const headerLength = view.getBigUint64(0, true);
  if (headerLength > BigInt(Math.min(MAX_HEADER_BYTES, buf.byteLength - 8))) {
    fail(`header length ${headerLength} does not fit in the ${buf.byteLength}-byte file`);
  }
  const dataStart = 8 + Number(headerLength);
  let header: unknown;
  try {
    header = JSON.parse(Buffer.from(buf.buffer, buf.byteOffset + 8, dataStart - 8).toString('utf8'));
  } catch (err) {
    fail(`header is not JSON: ${(err as Error).message}`);
  }
  if (typeof header !== 'object' || header === null || Array.isArray(header)) fail('header is not a JSON object');

  const dataLength = buf.byteLength - dataStart;
  const tensors = new Map<string, RawTensor>();
  const spans: Array<[number, number, string]> = [];
  let metadata: Record<string, string> = {};
  for (const [name, entry] of Object.entries(header as Record<string, unknown>)) {
    if (name === '__metadata__') {
      metadata = entry as Record<string, string>;
      continue;
    }
    const { dtype, shape, data_offsets: offsets } = (entry ?? {}) as Record<string, unknown>;
    const width = typeof dtype === 'string' ? BYTES_PER_ELEMENT[dtype] : undefined;
    if (width === undefined) fail(`tensor "${name}" has unknown dtype ${JSON.stringify(dtype)}`);
    if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      fail(`tensor "${name}" has invalid shape ${JSON.stringify(shape)}`);
    }
    if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every((o) => Number.isSafeInteger(o) && o >= 0)) {
      fail(`tensor "${name}" has invalid data_offsets ${JSON.stringify(offsets)}`);
    }
    const [begin, end] = offsets as [number, number];
    if (begin > end || end > dataLength) {
      fail(`tensor "${name}" spans bytes ${begin}..${end} but the data section has ${dataLength} bytes (file truncated?)`);
    }
    const expected = (shape as number[]).reduce((a, d) => a * d, 1) * width!;
    if (expected !== end - begin) {
      fail(`tensor "${name}" is ${dtype}[${(shape as number[]).join(',')}] = ${expected} bytes but spans ${end - begin}`);
    }
    spans.push([begin, end, name]);
    tensors.set(name, { dtype: dtype as string, shape: shape as number[], bytes: buf.subarray(dataStart + begin, dataStart + end) });
  }
  spans.sort((a, b) => a[0] - b[0]);
  for (let i = 1; i < spans.length; i++) {
    if (spans[i][0] < spans[i - 1][1]) fail(`tensors "${spans[i - 1][2]}" and "${spans[i][2]}" overlap`);
  }
  return { metadata, tensors };
}

/** Converts a floating-point tensor to float32 (F32 is viewed in place when aligned, else copied). */
export function toFloat32(t: RawTensor, file: string, name: string): Float32Array {
  const n = t.shape.reduce((a, d) => a * d, 1);
  const { bytes } = t;
  switch (t.dtype) {
    case 'F32': {
      if (bytes.byteOffset % 4 === 0) return new Float32Array(bytes.buffer, bytes.byteOffset, n);
      const out = new Float32Array(n);
      new Uint8Array(out.buffer).set(bytes);
      return out;
    }
    case 'F16': {
      const out = new Float32Array(n);
      for (let i = 0; i < n; i++) out[i] = halfToFloat(bytes[2 * i] | (bytes[2 * i + 1] << 8));
      return out;
    }
    case 'BF16': {
      // bfloat16 is the top half of a float32.
      const bits = new Uint32Array(n);
      for (let i = 0; i < n; i++) bits[i] = ((bytes[2 * i] | (bytes[2 * i + 1] << 8)) << 16) >>> 0;
      return new Float32Array(bits.buffer);
    }
    default:
      throw new ModelFormatError(file, `tensor "${name}" is ${t.dtype}; only F32, F16 and BF16 weights are supported`);
  }
}

function halfToFloat(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const frac = h & 0x3ff;
  if (exp === 0) return sign * frac * 2 ** -24;
  if (exp === 31) return frac ? NaN : sign * Infinity;
  return sign * (1 + frac / 1024) * 2 ** (exp - 15);
}

/** Serialises float32 tensors (in the given order) to a safetensors buffer. */
export function encodeSafetensors(tensors: Map<string, Float32Tensor>, metadata?: Record<string, string>): Buffer {
  const header: Record<string, unknown> = {};
  if (metadata) header.__metadata__ = metadata;
  let offset = 0;
  for (const [name, t] of tensors) {
    const n = t.shape.reduce((a, d) => a * d, 1);
    if (n !== t.data.length) throw new Error(`tensor "${name}": shape [${t.shape}] needs ${n} values, got ${t.data.length}`);
    header[name] = { dtype: 'F32', shape: t.shape, data_offsets: [offset, offset + t.data.byteLength] };
    offset += t.data.byteLength;
  }
  // Padding the header to 8 bytes keeps every F32 tensor aligned, so the reader can view it without copying.
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - ((8 + Buffer.byteLength(json)) % 8)) % 8);
  const headerBytes = Buffer.from(json, 'utf8');
  const out = Buffer.alloc(8 + headerBytes.length + offset);
  out.writeBigUInt64LE(BigInt(headerBytes.length), 0);
  headerBytes.copy(out, 8);
  let at = 8 + headerBytes.length;
  for (const t of tensors.values()) {
    out.set(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength), at);
    at += t.data.byteLength;
  }
  return out;
}
