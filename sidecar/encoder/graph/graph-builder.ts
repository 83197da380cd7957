import { onnx } from 'onnx-proto';
import type { Float32Tensor } from '../safetensors';

/** Opset 17 / IR 8: the combination the ORT prototype validated (ReduceMean still takes `axes` as an attribute). */
export const OPSET = 17;
const IR_VERSION = 8;

export type AttrValue = number | number[] | string | { float: number };
export type ElemType = 'float' | 'int64' | 'int32';
/** A dimension: a fixed size or a symbolic name such as 'batch'. */
export type Dim = number | string;

const ELEM: Record<ElemType, onnx.TensorProto.DataType> = {
  float: onnx.TensorProto.DataType.FLOAT,
  int64: onnx.TensorProto.DataType.INT64,
  int32: onnx.TensorProto.DataType.INT32,
};

export interface GraphBuilderOptions {
  /** Weights by safetensors name; `weight(name)` looks them up here. */
  weights: ReadonlyMap<string, Float32Tensor>;
  /** Make weights graph inputs instead of initializers (a training step feeds and differentiates them). */
  weightsAsInputs?: boolean;
}

/**
 * Collects ONNX nodes, initializers and graph inputs/outputs, then serialises a ModelProto.
 * Layer functions (bert-layers.ts) emit through it, so the inference graph and a training graph share them.
 */
export class GraphBuilder {
  private readonly nodes: onnx.INodeProto[] = [];
  private readonly initializers: onnx.ITensorProto[] = [];
  private readonly inputs: onnx.IValueInfoProto[] = [];
  private readonly outputs: onnx.IValueInfoProto[] = [];
  private readonly usedWeights = new Set<string>();
  private readonly constants = new Map<string, string>();
  private counter = 0;

  constructor(private readonly opts: GraphBuilderOptions) {}

  /** Declares a graph input and returns its value name. */
  input(name: string, type: ElemType, dims: Dim[]): string {
    this.inputs.push(valueInfo(name, type, dims));
    return name;
  }

  /** Marks `value` as a graph output named `name` (adds an Identity when the names differ). */
  output(value: string, name: string, type: ElemType, dims: Dim[]): void {
    if (value !== name) this.nodes.push({ opType: 'Identity', input: [value], output: [name], name: `${name}_out` });
    this.outputs.push(valueInfo(name, type, dims));
  }

  /** Emits one node and returns its single output's name. */
  op(opType: string, inputs: string[], attrs: Record<string, AttrValue> = {}): string {
    return this.opN(opType, inputs, 1, attrs)[0];
  }

  /** Emits one node with `outputs` outputs. */
  opN(opType: string, inputs: string[], outputs: number, attrs: Record<string, AttrValue> = {}): string[] {
    const id = `${opType}_${this.counter++}`;
    const out = Array.from({ length: outputs }, (_, i) => (outputs === 1 ? id : `${id}_${i}`));
    this.nodes.push({ opType, name: id, input: inputs, output: out, attribute: Object.entries(attrs).map(([k, v]) => attr(k, v)) });
    return out;
  }

  /** The value holding weight `name` (its safetensors name), added once as an initializer or a graph input. */
  weight(name: string): string {
    const t = this.opts.weights.get(name);
    if (!t) throw new Error(`weight "${name}" is missing from the model`);
    if (!this.usedWeights.has(name)) {
      this.usedWeights.add(name);
      if (this.opts.weightsAsInputs) this.inputs.push(valueInfo(name, 'float', t.shape));
      else this.initializers.push(floatTensor(name, t.shape, t.data));
    }
    return name;
  }

  /** Names of the weights the graph uses, in first-use order (the feed order for weights-as-inputs). */
  weightNames(): string[] {
    return [...this.usedWeights];
  }

  /** A float scalar constant (shared between uses). */
  float(value: number): string {
    return this.constant(`f:${value}`, () => floatTensor(this.fresh('const_f'), [], new Float32Array([value])));
  }

  /** An int64 1-D constant, or a scalar when `scalar` is set (shared between uses). */
  ints(values: number[], scalar = false): string {
    return this.constant(`i:${scalar}:${values}`, () => ({
      name: this.fresh('const_i'),
      dataType: onnx.TensorProto.DataType.INT64,
      dims: scalar ? [] : [values.length],
      int64Data: values,
    }));
  }

  /** Serialises the graph to ONNX protobuf bytes. */
  toBytes(graphName = 'graph'): Uint8Array {
    const model: onnx.IModelProto = {
      irVersion: IR_VERSION,
      opsetImport: [{ domain: '', version: OPSET }],
      producerName: 'replug-code',
      graph: { name: graphName, node: this.nodes, initializer: this.initializers, input: this.inputs, output: this.outputs },
    };
    return onnx.ModelProto.encode(model).finish();
  }

  private constant(key: string, make: () => onnx.ITensorProto): string {
    let name = this.constants.get(key);
    if (!name) {
      const t = make();
      this.initializers.push(t);
      name = t.name!;
      this.constants.set(key, name);
    }
    return name;
  }

  private fresh(prefix: string): string {
    return `${prefix}_${this.counter++}`;
  }
}

function floatTensor(name: string, dims: number[], data: Float32Array): onnx.ITensorProto {
  return {
    name,
    dataType: onnx.TensorProto.DataType.FLOAT,
    dims,
    rawData: new Uint8Array(data.buffer, data.byteOffset, data.byteLength),
  };
}

function valueInfo(name: string, type: ElemType, dims: Dim[]): onnx.IValueInfoProto {
  return {
    name,
    type: {
      tensorType: {
        elemType: ELEM[type],
        shape: { dim: dims.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) },
      },
    },
  };
}

function attr(name: string, v: AttrValue): onnx.IAttributeProto {
  const T = onnx.AttributeProto.AttributeType;
  if (typeof v === 'string') return { name, type: T.STRING, s: new TextEncoder().encode(v) };
  if (Array.isArray(v)) return { name, type: T.INTS, ints: v };
  if (typeof v === 'object') return { name, type: T.FLOAT, f: v.float };
  return { name, type: T.INT, i: v };
}
