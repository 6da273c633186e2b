// A small builder for ONNX graphs: name values, add initializers and nodes, declare inputs/outputs, and encode
// a ModelProto (opset 17, IR 8 by default). Only what our tiny test models and the ViT bench model need.

import { writeChunks, writeStreamAtomic } from '../../src/io/atomic.ts';
import {
  encodeModel,
  encodeModelChunks,
  type AttributeSpec,
  type Dim,
  type ElemType,
  type ModelSpec,
  type NodeSpec,
  type TensorData,
  type TensorSpec,
  type ValueInfoSpec,
} from './model-proto.ts';

export type { Dim, ElemType } from './model-proto.ts';

/** A named value in the graph (graph input, initializer or node output). */
export interface Value {
  readonly name: string;
}

/**
 * Attribute values: a plain integer is an INT, an integer array is INTS, a string is a STRING; floats must be
 * wrapped with `float()` / `floats()` so that `epsilon: 1` can never silently become an integer.
 */
export type AttrValue = number | bigint | string | readonly (number | bigint)[] | readonly string[] | AttributeSpec;

export function float(value: number): AttributeSpec {
  return { kind: 'float', value };
}
export function floats(value: readonly number[]): AttributeSpec {
  return { kind: 'floats', value };
}

function toAttribute(name: string, v: AttrValue): AttributeSpec {
  if (typeof v === 'number') {
    if (!Number.isInteger(v)) throw new Error(`attribute ${name}=${v}: wrap non-integer values in float()`);
    return { kind: 'int', value: v };
  }
  if (typeof v === 'bigint') return { kind: 'int', value: v };
  if (typeof v === 'string') return { kind: 'string', value: v };
  if (Array.isArray(v)) {
    if (v.every((x) => typeof x === 'string')) return { kind: 'strings', value: v as readonly string[] };
    for (const x of v) {
      if (typeof x === 'number' && !Number.isInteger(x)) {
        throw new Error(`attribute ${name}: wrap non-integer lists in floats()`);
      }
    }
    return { kind: 'ints', value: v as readonly (number | bigint)[] };
  }
  return v as AttributeSpec;
}

function elemTypeOf(data: TensorData): ElemType {
  if (data instanceof Float32Array) return 'float32';
  if (data instanceof Float64Array) return 'float64';
  if (data instanceof BigInt64Array) return 'int64';
  if (data instanceof Int32Array) return 'int32';
  if (data instanceof Int8Array) return 'int8';
  return 'uint8';
}

export interface OpOptions {
  /** Name of the (first) output value; default an auto-generated unique name. */
  out?: string;
  /** Node name; default derived from the op type. */
  name?: string;
}

export class GraphBuilder {
  private readonly nodes: NodeSpec[] = [];
  private readonly initializers: TensorSpec[] = [];
  private readonly inputs: ValueInfoSpec[] = [];
  private readonly outputs: ValueInfoSpec[] = [];
  private readonly names = new Set<string>();
  private counter = 0;

  constructor(readonly name = 'main_graph') {}

  /** Declares a graph input. */
  input(name: string, elemType: ElemType, dims: readonly Dim[]): Value {
    this.claim(name);
    this.inputs.push({ name, elemType, dims });
    return { name };
  }

  /** Adds a constant tensor stored in the model. The data is referenced, not copied, until encoding. */
  initializer(name: string, data: TensorData, dims: readonly number[], elemType?: ElemType): Value {
    this.claim(name);
    this.initializers.push({ name, elemType: elemType ?? elemTypeOf(data), dims, data });
    return { name };
  }

  /** An anonymous constant (a shape, an axis list, a scalar): float numbers become float32, bigint/int lists int64. */
  const(values: readonly number[] | readonly bigint[] | TensorData, dims?: readonly number[], hint = 'const'): Value {
    let data: TensorData;
    if (ArrayBuffer.isView(values)) data = values as TensorData;
    else if (values.length > 0 && typeof values[0] === 'bigint') data = BigInt64Array.from(values as readonly bigint[]);
    else data = Float32Array.from(values as readonly number[]);
    const name = this.fresh(hint);
    this.initializers.push({ name, elemType: elemTypeOf(data), dims: dims ?? [data.length], data });
    return { name };
  }

  /** An int64 constant (shapes, axes, indices). */
  ints(values: readonly number[], dims?: readonly number[]): Value {
    return this.const(BigInt64Array.from(values.map((v) => BigInt(v))), dims ?? [values.length], 'ints');
  }

  /** A float32 scalar (rank 0). */
  scalar(value: number): Value {
    return this.const(Float32Array.of(value), [], 'scalar');
  }

  /** Adds a node with one output. Pass '' as an input to skip an optional input. */
  op(opType: string, inputs: readonly (Value | '')[], attrs: Record<string, AttrValue> = {}, options: OpOptions = {}): Value {
    const [first] = this.opN(opType, inputs, 1, attrs, options);
    return first as Value;
  }

  /** Adds a node with `count` outputs. */
  opN(
    opType: string,
    inputs: readonly (Value | '')[],
    count: number,
    attrs: Record<string, AttrValue> = {},
    options: OpOptions = {},
  ): Value[] {
    const outputs: string[] = [];
    for (let i = 0; i < count; i++) {
      const outName = i === 0 && options.out !== undefined ? options.out : this.fresh(opType);
      if (i === 0 && options.out !== undefined) this.claim(outName);
      outputs.push(outName);
    }
    const attributes: Record<string, AttributeSpec> = {};
    for (const [k, v] of Object.entries(attrs)) attributes[k] = toAttribute(k, v);
    this.nodes.push({
      opType,
      inputs: inputs.map((v) => (v === '' ? '' : v.name)),
      outputs,
      name: options.name ?? `${opType}_node_${this.nodes.length}`,
      attributes,
    });
    return outputs.map((name) => ({ name }));
  }

  /** Declares a graph output. If `name` differs from the value's name an Identity node renames it. */
  output(value: Value, elemType: ElemType, dims: readonly Dim[], name: string = value.name): Value {
    let v = value;
    if (name !== value.name) v = this.op('Identity', [value], {}, { out: name });
    this.outputs.push({ name, elemType, dims });
    return v;
  }

  /** The model as a plain spec (for inspection or further encoding). */
  toSpec(meta: Omit<ModelSpec, 'graph'> = {}): ModelSpec {
    if (this.outputs.length === 0) throw new Error(`graph ${this.name} has no outputs`);
    return {
      producerName: 'balanced-dpo',
      ...meta,
      graph: {
        name: this.name,
        nodes: this.nodes,
        initializers: this.initializers,
        inputs: this.inputs,
        outputs: this.outputs,
      },
    };
  }

  /** Encodes the model as one buffer. */
  toBytes(meta: Omit<ModelSpec, 'graph'> = {}): Uint8Array {
    return encodeModel(this.toSpec(meta));
  }

  /**
   * Streams the model to `path` (atomically, see writeStreamAtomic) without assembling one buffer, so a model of hundreds of MB
   * needs no second copy in memory. Returns the byte count.
   */
  async writeFile(path: string, meta: Omit<ModelSpec, 'graph'> = {}): Promise<number> {
    const chunks = encodeModelChunks(this.toSpec(meta));
    let total = 0;
    const counted = function* (): Generator<Uint8Array> {
      for (const chunk of chunks) {
        total += chunk.byteLength;
        yield chunk;
      }
    };
    await writeStreamAtomic(path, (handle) => writeChunks(handle, counted()));
    return total;
  }

  private claim(name: string): void {
    if (name === '') throw new Error('value names must be non-empty');
    if (this.names.has(name)) throw new Error(`value name ${name} is already used in graph ${this.name}`);
    this.names.add(name);
  }

  private fresh(hint: string): string {
    let name: string;
    do name = `${hint}_${this.counter++}`;
    while (this.names.has(name));
    this.names.add(name);
    return name;
  }
}
