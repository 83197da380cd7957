import { onnx } from 'onnx-proto';
import type { Float32Tensor } from '../../encoder/safetensors';

/**
 * Turns the graph inputs named in `frozen` into initializers holding the weights' current values. A frozen weight
 * never changes, so it need not be fed each run: with onnxruntime-node every input is copied to the device per run
 * on CUDA (there is no device-side binding for it), and the word-embedding table alone is 47 MB at MiniLM shape.
 * On the CPU, ORT can then fold and prepack frozen layers' matrices.
 */
export function withConstantWeights(model: Uint8Array, weights: ReadonlyMap<string, Float32Tensor>, frozen: ReadonlySet<string>): Uint8Array {
  if (frozen.size === 0) return model;
  const proto = onnx.ModelProto.decode(model);
  const graph = proto.graph!;
  const constant = graph.input!.filter((i) => frozen.has(i.name!));
  graph.input = graph.input!.filter((i) => !frozen.has(i.name!));
  for (const { name } of constant) {
    const w = weights.get(name!)!;
    graph.initializer!.push({
      name,
      dataType: onnx.TensorProto.DataType.FLOAT,
      dims: w.shape,
      rawData: new Uint8Array(w.data.buffer, w.data.byteOffset, w.data.byteLength),
    });
  }
  return onnx.ModelProto.encode(proto).finish();
}
