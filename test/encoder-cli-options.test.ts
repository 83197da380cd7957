import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Command } from 'commander';
import { makeTinyBert } from '../scripts/make-tiny-bert';
import { addModelOptions, encoderFromOptions, type ModelCliOptions } from '../sidecar/cli/model-options';

function parse(args: string[]): ModelCliOptions {
  const cmd = addModelOptions(new Command('x').exitOverride().configureOutput({ writeErr: () => undefined }));
  cmd.parse(args, { from: 'user' });
  return cmd.opts<ModelCliOptions>();
}

describe('CLI model options', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'replug-cli-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  test('parses --model, --device, --precision and --batch-size, with device auto by default', () => {
    assert.deepEqual(parse(['--model', 'm', '--device', 'cpu', '--precision', 'fp32', '--batch-size', '8']), { model: 'm', device: 'cpu', precision: 'fp32', batchSize: 8 });
    assert.deepEqual(parse([]), { device: 'auto' });
    assert.throws(() => parse(['--device', 'tpu']), /Allowed choices are auto, cuda, webgpu, cpu/);
    assert.throws(() => parse(['--precision', 'int4']), /Allowed choices are auto, fp32, int8, fp16/);
    assert.throws(() => parse(['--batch-size', '0']), /positive whole number/);
  });

  test('no --model means no encoder', async () => {
    assert.equal(await encoderFromOptions({ device: 'auto' }), undefined);
  });

  test('loads the named model with the given batch size', async () => {
    const model = await makeTinyBert(path.join(dir, 'tiny'));
    const encoder = await encoderFromOptions(parse(['--model', model, '--device', 'cpu', '--precision', 'fp32', '--batch-size', '2']));
    assert.ok(encoder);
    try {
      assert.equal(encoder.precision, 'fp32');
      const vectors = await encoder.embed(['a', 'b', 'c']);
      assert.equal(vectors.length, 3);
      assert.equal(vectors[0].length, encoder.dim);
    } finally {
      await encoder.dispose();
    }
  });
});
