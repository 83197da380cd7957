import { onnx } from 'onnx-proto';
import { QUERY_EMB } from './train-outputs';

/**
 * A training-step graph cut in two at the query embeddings. The LSR loop needs a step's query embeddings before
 * the step (to retrieve its candidates and ask the LM about them); running the forward half first and keeping
 * what the backward needs replaces the separate inference pass the loop would otherwise make, saving one of the
 * step's three forward-sized passes.
 *
 * The forward graph computes `query_emb` and outputs the results of the weight matmuls (`saved`): the values
 * that cost real work to recompute. The backward graph takes them as inputs, recomputes the cheap values between
 * them (bias adds, LayerNorm, GELU, the attention scores and softmax) and has every output of the whole graph.
 * What is saved crosses the JS boundary twice, so keeping it to the matmul outputs matters: about half of what the
 * backward reads (MiniLM shape, 4 × 128 tokens: ≈ 42 of ≈ 94 MB).
 */
export interface SplitTrainGraph {
  forward: Uint8Array;
  backward: Uint8Array;
  /** Outputs of the forward graph and inputs of the backward graph, besides the query embeddings. */
  saved: string[];
}

export function splitTrainGraph(model: Uint8Array, weightNames: readonly string[]): SplitTrainGraph {
  const proto = onnx.ModelProto.decode(model);
  const graph = proto.graph!;
  const nodes = graph.node!;
  const producer = new Map<string, onnx.INodeProto>();
  for (const node of nodes) for (const out of node.output!) producer.set(out, node);

  const forward = new Set<onnx.INodeProto>();
  const addAncestors = (value: string) => {
    const node = producer.get(value);
    if (!node || forward.has(node)) return;
    forward.add(node);
    node.input!.forEach(addAncestors);
  };
  addAncestors(QUERY_EMB);

  const weights = new Set(weightNames);
  const isWeight = (value: string) => weights.has(value) || (producer.get(value)?.opType === 'Transpose' && weights.has(producer.get(value)!.input![0]));
  const isSaved = (node: onnx.INodeProto) => (node.opType === 'MatMul' || node.opType === 'Gemm') && node.input!.some(isWeight);
  const saved = new Set<string>();
  const recomputed = new Set<onnx.INodeProto>();
  const need = (value: string) => {
    const node = producer.get(value);
    if (!node || !forward.has(node) || recomputed.has(node)) return;
    if (isSaved(node)) {
      saved.add(value);
    } else {
      recomputed.add(node);
      node.input!.forEach(need);
    }
  };
  for (const node of nodes) if (!forward.has(node)) node.input!.forEach(need);
  for (const out of graph.output!) need(out.name!);

  const savedInfo = [...saved].map((name): onnx.IValueInfoProto => ({ name, type: { tensorType: { elemType: onnx.TensorProto.DataType.FLOAT } } }));
  const part = (keep: (node: onnx.INodeProto) => boolean, extraInputs: onnx.IValueInfoProto[], outputs: onnx.IValueInfoProto[], name: string) => {
    const kept = nodes.filter(keep); // the builder's order is topological, and so is any subsequence of it
    const read = new Set(kept.flatMap((n) => n.input!));
    return onnx.ModelProto.encode({
      ...proto,
      graph: {
        name,
        node: kept,
        initializer: graph.initializer!.filter((t) => read.has(t.name!)),
        input: [...graph.input!.filter((i) => read.has(i.name!)), ...extraInputs],
        output: outputs,
      },
    }).finish();
  };
  return {
    forward: part((n) => forward.has(n), [], [graph.output!.find((o) => o.name === QUERY_EMB)!, ...savedInfo], `${graph.name}_forward`),
    backward: part((n) => !forward.has(n) || recomputed.has(n), savedInfo, graph.output!, `${graph.name}_backward`),
    saved: [...saved],
  };
}
