import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { ModelFormatError } from '../sidecar/encoder/model-format-error';
import { encodeSafetensors, parseSafetensors, readSafetensors, toFloat32, type Float32Tensor } from '../sidecar/encoder/safetensors';

/** Builds a safetensors buffer from a raw header object and data bytes, to craft corrupt files. */
function craft(header: unknown, data: Uint8Array, headerLength?: bigint): Uint8Array {
  const json = Buffer.from(typeof header === 'string' ? header : JSON.stringify(header));
  const out = Buffer.alloc(8 + json.length + data.length);
  out.writeBigUInt64LE(headerLength ?? BigInt(json.length), 0);
  json.copy(out, 8);
  out.set(data, 8 + json.length);
  return out;
}

const sample = new Map<string, Float32Tensor>([
  ['a.weight', { shape: [2, 3], data: Float32Array.from([1, -2, 3.5, 4, 5e-8, -6e9]) }],
  ['a.bias', { shape: [3], data: Float32Array.from([0.1, 0.2, 0.3]) }],
  ['scalar', { shape: [], data: Float32Array.from([7]) }],
]);

function expectFormatError(buf: Uint8Array, pattern: RegExp): void {
  assert.throws(() => parseSafetensors(buf, 'bad.safetensors'), (err: unknown) => {
    assert.ok(err instanceof ModelFormatError, `expected ModelFormatError, got ${String(err)}`);
    assert.match(err.message, /^bad\.safetensors: /);
    assert.match(err.message, pattern);
    return true;
  });
}

describe('safetensors', () => {
  test('round-trips float32 tensors and metadata through a file', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'replug-st-'));
    try {
      const file = path.join(dir, 'model.safetensors');
      await writeFile(file, encodeSafetensors(sample, { format: 'pt' }));
      const read = await readSafetensors(file);
      assert.deepEqual(read.metadata, { format: 'pt' });
      assert.deepEqual([...read.tensors.keys()], [...sample.keys()]);
      for (const [name, t] of sample) {
        const got = read.tensors.get(name)!;
        assert.equal(got.dtype, 'F32');
        assert.deepEqual(got.shape, t.shape);
        assert.deepEqual(toFloat32(got, file, name), t.data);
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test('converts F16 and BF16 to float32', () => {
    // 1.0, -2.0, 0.5, 65504 (max half), smallest subnormal half
    const f16 = Uint8Array.from(Buffer.from(Uint16Array.from([0x3c00, 0xc000, 0x3800, 0x7bff, 0x0001]).buffer));
    // bfloat16 is the top 16 bits of float32: 1.0 = 0x3f80, -3.0 = 0xc040
    const bf16 = Uint8Array.from(Buffer.from(Uint16Array.from([0x3f80, 0xc040]).buffer));
    const data = new Uint8Array([...f16, ...bf16]);
    const parsed = parseSafetensors(
      craft({ h: { dtype: 'F16', shape: [5], data_offsets: [0, 10] }, b: { dtype: 'BF16', shape: [2], data_offsets: [10, 14] } }, data),
      'mixed.safetensors',
    );
    assert.deepEqual([...toFloat32(parsed.tensors.get('h')!, 'f', 'h')], [1, -2, 0.5, 65504, 2 ** -24]);
    assert.deepEqual([...toFloat32(parsed.tensors.get('b')!, 'f', 'b')], [1, -3]);
  });

  test('reads unaligned F32 data by copying', () => {
    let json = JSON.stringify({ x: { dtype: 'F32', shape: [2], data_offsets: [0, 8] } });
    if ((8 + json.length) % 4 === 0) json += ' '; // put the data at an offset no Float32Array can view
    const buf = craft(json, new Uint8Array(Buffer.from(Float32Array.from([1.5, -2.5]).buffer)));
    const t = parseSafetensors(buf, 'u').tensors.get('x')!;
    assert.notEqual(t.bytes.byteOffset % 4, 0);
    assert.deepEqual([...toFloat32(t, 'u', 'x')], [1.5, -2.5]);
  });

  test('rejects integer tensors when float weights are asked for', () => {
    const parsed = parseSafetensors(craft({ ids: { dtype: 'I64', shape: [1], data_offsets: [0, 8] } }, new Uint8Array(8)), 'i.safetensors');
    assert.throws(() => toFloat32(parsed.tensors.get('ids')!, 'i.safetensors', 'ids'), /I64; only F32, F16 and BF16/);
  });

  test('rejects a truncated file', () => {
    const good = encodeSafetensors(sample);
    expectFormatError(good.subarray(0, good.length - 4), /spans bytes .* data section has .* \(file truncated\?\)/);
    expectFormatError(good.subarray(0, 5), /shorter than the 8-byte header length/);
  });

  test('rejects a header length beyond the file', () => {
    expectFormatError(craft({}, new Uint8Array(0), 1n << 40n), /header length \d+ does not fit/);
  });

  test('rejects a header that is not JSON', () => {
    const buf = Buffer.alloc(12);
    buf.writeBigUInt64LE(4n, 0);
    buf.write('{{{{', 8);
    expectFormatError(buf, /header is not JSON/);
  });

  test('rejects offsets out of range and overlapping tensors', () => {
    const data = new Uint8Array(16);
    expectFormatError(craft({ x: { dtype: 'F32', shape: [4], data_offsets: [8, 24] } }, data), /"x" spans bytes 8\.\.24/);
    expectFormatError(
      craft({ x: { dtype: 'F32', shape: [3], data_offsets: [0, 12] }, y: { dtype: 'F32', shape: [2], data_offsets: [8, 16] } }, data),
      /"x" and "y" overlap/,
    );
  });

  test('rejects a dtype/shape that disagrees with the byte span', () => {
    expectFormatError(craft({ x: { dtype: 'F32', shape: [3], data_offsets: [0, 16] } }, new Uint8Array(16)), /F32\[3\] = 12 bytes but spans 16/);
    expectFormatError(craft({ x: { dtype: 'Q4', shape: [4], data_offsets: [0, 2] } }, new Uint8Array(2)), /unknown dtype "Q4"/);
    expectFormatError(craft({ x: { dtype: 'F32', shape: [-1], data_offsets: [0, 4] } }, new Uint8Array(4)), /invalid shape/);
  });

  test('writer refuses a shape that does not match the data', () => {
    assert.throws(() => encodeSafetensors(new Map([['x', { shape: [2, 2], data: new Float32Array(3) }]])), /needs 4 values, got 3/);
  });
});
