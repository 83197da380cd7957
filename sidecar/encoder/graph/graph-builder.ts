import { onnx } from 'onnx-proto';
import type { Float32Tensor } from '../safetensors';

/** Opset 17 / IR 8: the combination the ORT prototype validated (ReduceMean still takes `axes` as an attribute). */
export const OPSET = 17;
const IR_VERSION = 8;

export type AttrValue = number | number[] | string | { float: number };
export type ElemType = 'float' | 'float16' | 'int64' | 'int32' | 'int8' | 'uint8';
/** A dimension: a fixed size or a symbolic name such as 'batch'. */
export type Dim = number | string;

const ELEM: Record<ElemType, onnx.TensorProto.DataType> = {
  float: onnx.TensorProto.DataType.FLOAT,
  float16: onnx.TensorProto.DataType.FLOAT16,
  int64: onnx.TensorProto.DataType.INT64,
  int32: onnx.TensorProto.DataType.INT32,
  int8: onnx.TensorProto.DataType.INT8,
  uint8: onnx.TensorProto.DataType.UINT8,
};

/** ONNX Runtime's contrib operators (fused attention, quantised matmul…), version 1 of their domain. */
export const MS_DOMAIN = 'com.microsoft';

export interface GraphBuilderOptions {
  /** Weights by safetensors name; `weight(name)` looks them up here. */
  weights: ReadonlyMap<string, Float32Tensor>;
  /** Make weights graph inputs instead of initializers (a training step feeds and differentiates them). */
  weightsAsInputs?: boolean;
  /** Store weights and float constants as float16 (a GPU graph); the graph then computes in float16. */
  float16?: boolean;
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
  private usesMsDomain = false;
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
  opN(opType: string, inputs: string[], outputs: number, attrs: Record<string, AttrValue> = {}, domain = ''): string[] {
    const id = `${opType}_${this.counter++}`;
    const out = Array.from({ length: outputs }, (_, i) => (outputs === 1 ? id : `${id}_${i}`));
    this.nodes.push({ opType, domain, name: id, input: inputs, output: out, attribute: Object.entries(attrs).map(([k, v]) => attr(k, v)) });
    if (domain === MS_DOMAIN) this.usesMsDomain = true;
    return out;
  }

  /** Emits one ONNX Runtime contrib op (com.microsoft domain); an empty input name skips an optional input. */
  msOp(opType: string, inputs: string[], attrs: Record<string, AttrValue> = {}): string {
    return this.opN(opType, inputs, 1, attrs, MS_DOMAIN)[0];
  }

  /** A tensor derived from the weights at build time (a transposed, concatenated or quantised copy), by name. */
  initializer(name: string, type: ElemType, dims: number[], data: Float32Array | Uint16Array | Int8Array | Uint8Array | Int32Array): string {
    this.initializers.push({ name, dataType: ELEM[type], dims, rawData: new Uint8Array(data.buffer, data.byteOffset, data.byteLength) });
    return name;
  }

  /** The value holding weight `name` (its safetensors name), added once as an initializer or a graph input. */
  weight(name: string): string {
    const t = this.opts.weights.get(name);
    if (!t) throw new Error(`weight "${name}" is missing from the model`);
    if (!this.usedWeights.has(name)) {
      this.usedWeights.add(name);
      if (this.opts.weightsAsInputs) this.inputs.push(valueInfo(name, this.floatType, t.shape));
      else this.derived(name, t);
    }
    return name;
  }

  /** The element type of weights and float constants. */
  get floatType(): 'float' | 'float16' {
    return this.opts.float16 ? 'float16' : 'float';
  }

  /** The ONNX data type code of `floatType`, for Cast's `to`. */
  get floatTypeCode(): number {
    return ELEM[this.floatType];
  }

  /** A float tensor computed from the weights at build time (e.g. a transposed copy), stored as `floatType`. */
  derived(name: string, t: Float32Tensor): string {
    this.initializers.push(this.opts.float16 ? float16Tensor(name, t.shape, t.data) : floatTensor(name, t.shape, t.data));
    return name;
  }

  /** Names of the weights the graph uses, in first-use order (the feed order for weights-as-inputs). */
  weightNames(): string[] {
    return [...this.usedWeights];
  }

  /** A float scalar constant (shared between uses). */
  float(value: number): string {
    const data = new Float32Array([value]);
    return this.constant(`f:${value}`, () => (this.opts.float16 ? float16Tensor : floatTensor)(this.fresh('const_f'), [], data));
  }

  /** A uint8 scalar constant (shared between uses), e.g. a quantisation zero point. */
  uint8(value: number): string {
    return this.constant(`u8:${value}`, () => ({
      name: this.fresh('const_u8'),
      dataType: onnx.TensorProto.DataType.UINT8,
      dims: [],
      rawData: new Uint8Array([value]),
    }));
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
      opsetImport: [{ domain: '', version: OPSET }, ...(this.usesMsDomain ? [{ domain: MS_DOMAIN, version: 1 }] : [])],
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

function float16Tensor(name: string, dims: number[], data: Float32Array): onnx.ITensorProto {
  const half = toFloat16Bits(data);
  return { name, dataType: onnx.TensorProto.DataType.FLOAT16, dims, rawData: new Uint8Array(half.buffer, half.byteOffset, half.byteLength) };
}

/**
 * IEEE binary16 bits of each value, rounded to nearest even. By hand because Node 20 has no Float16Array; values
 * beyond ±65504 become ±Infinity and tiny ones subnormal or zero, as a float16 cast does.
 */
export function toFloat16Bits(values: Float32Array): Uint16Array {
  const f32 = new Float32Array(1);
  const u32 = new Uint32Array(f32.buffer);
  const out = new Uint16Array(values.length);
  for (let i = 0; i < values.length; i++) {
    f32[0] = values[i];
    const x = u32[0];
    const sign = (x >>> 16) & 0x8000;
    const exp = (x >>> 23) & 0xff;
    let mant = x & 0x7fffff;
    if (exp === 0xff) {
      out[i] = sign | 0x7c00 | (mant ? 0x200 : 0); // Inf or NaN
      continue;
    }
    let e = exp - 127 + 15;
    if (e >= 0x1f) {
      out[i] = sign | 0x7c00;
      continue;
    }
    if (e <= 0) {
      if (e < -10) {
        out[i] = sign;
        continue;
      }
      mant |= 0x800000; // subnormal: shift the implicit 1 in
      const shift = 14 - e;
      const half = 1 << (shift - 1);
      const rest = mant & ((1 << shift) - 1);
      let m = mant >>> shift;
      if (rest > half || (rest === half && (m & 1))) m++;
      out[i] = sign | m;
      continue;
    }
    const rest = mant & 0x1fff;
    let m = mant >>> 13;
    if (rest > 0x1000 || (rest === 0x1000 && (m & 1))) {
      m++;
      if (m === 0x400) {
        m = 0;
        e++;
        if (e >= 0x1f) {
          out[i] = sign | 0x7c00;
          continue;
        }
      }
    }
    out[i] = sign | (e << 10) | m;
  }
  return out;
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
