// float16 exports as they reach the toolkit: the same graph, but with half-precision inputs and outputs. The float32
// body is kept and wrapped in Cast nodes, so the CPU provider (which lacks float16 kernels for much of a CLIP tower)
// runs it, and the only differences from the float32 model are the float16 roundings at the model's edges.
import type { ModelSpec, NodeSpec, ValueInfoSpec } from './model-proto.ts';

const FLOAT = 1;
const FLOAT16 = 10;

/** The model with every float32 graph input and output declared float16 (integer inputs such as input_ids stay). */
export function withFloat16Io(model: ModelSpec): ModelSpec {
  const graph = model.graph;
  const taken = new Set<string>([
    ...graph.inputs.map((v) => v.name),
    ...graph.initializers.map((t) => t.name),
    ...graph.nodes.flatMap((n) => [...n.inputs, ...n.outputs]),
  ]);
  const innerName = (name: string): string => {
    let candidate = `${name}__float32`;
    for (let i = 1; taken.has(candidate); i++) candidate = `${name}__float32_${i}`;
    taken.add(candidate);
    return candidate;
  };
  const renamed = new Map<string, string>();
  const inputCasts: NodeSpec[] = [];
  const outputCasts: NodeSpec[] = [];
  const toHalf = (v: ValueInfoSpec): ValueInfoSpec => (v.elemType === 'float32' ? { ...v, elemType: 'float16' } : v);
  for (const input of graph.inputs) {
    if (input.elemType !== 'float32') continue;
    const inner = innerName(input.name);
    renamed.set(input.name, inner);
    inputCasts.push({ opType: 'Cast', inputs: [input.name], outputs: [inner], name: `${input.name}_to_float32`, attributes: cast(FLOAT) });
  }
  for (const output of graph.outputs) {
    if (output.elemType !== 'float32') continue;
    const inner = renamed.get(output.name) ?? innerName(output.name);
    renamed.set(output.name, inner);
    outputCasts.push({
      opType: 'Cast',
      inputs: [inner],
      outputs: [output.name],
      name: `${output.name}_to_float16`,
      attributes: cast(FLOAT16),
    });
  }
  const rename = (name: string): string => renamed.get(name) ?? name;
  const body = graph.nodes.map((n) => ({ ...n, inputs: n.inputs.map(rename), outputs: n.outputs.map(rename) }));
  return {
    ...model,
    graph: {
      ...graph,
      nodes: [...inputCasts, ...body, ...outputCasts],
      inputs: graph.inputs.map(toHalf),
      outputs: graph.outputs.map(toHalf),
    },
  };
}

function cast(to: number): NodeSpec['attributes'] {
  return { to: { kind: 'int', value: to } };
}
