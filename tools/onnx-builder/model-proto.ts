// The subset of onnx.proto this project writes (ModelProto, GraphProto, NodeProto, TensorProto with raw_data,
// ValueInfoProto with symbolic dims, AttributeProto of the scalar/list kinds), as plain objects plus an encoder.
// Field numbers follow onnx.proto (IR version 8).

import { endianness } from 'node:os';
import { ProtoWriter } from './protobuf-writer.ts';

export type ElemType = 'float32' | 'uint8' | 'int8' | 'int32' | 'int64' | 'bool' | 'float16' | 'float64';

/** TensorProto.DataType codes. */
export const ELEM_TYPE_CODE: Record<ElemType, number> = {
  float32: 1,
  uint8: 2,
  int8: 3,
  int32: 6,
  int64: 7,
  bool: 9,
  float16: 10,
  float64: 11,
};

/** A dimension: a fixed size, or a symbolic name such as "batch_size". */
export type Dim = number | string;

export interface ValueInfoSpec {
  name: string;
  elemType: ElemType;
  /** Omit for an unknown rank. */
  dims?: readonly Dim[];
  docString?: string;
}

export type TensorData = Float32Array | Float64Array | Int32Array | BigInt64Array | Uint8Array | Int8Array;

export interface TensorSpec {
  name: string;
  elemType: ElemType;
  dims: readonly number[];
  /** Element values in row-major order; stored as little-endian raw_data. */
  data: TensorData;
}

export type AttributeSpec =
  | { kind: 'float'; value: number }
  | { kind: 'int'; value: number | bigint }
  | { kind: 'string'; value: string }
  | { kind: 'floats'; value: readonly number[] }
  | { kind: 'ints'; value: readonly (number | bigint)[] }
  | { kind: 'strings'; value: readonly string[] }
  | { kind: 'tensor'; value: TensorSpec };

export interface NodeSpec {
  opType: string;
  inputs: readonly string[];
  outputs: readonly string[];
  name?: string;
  domain?: string;
  attributes?: Readonly<Record<string, AttributeSpec>>;
}

export interface GraphSpec {
  name: string;
  nodes: readonly NodeSpec[];
  initializers: readonly TensorSpec[];
  inputs: readonly ValueInfoSpec[];
  outputs: readonly ValueInfoSpec[];
  valueInfo?: readonly ValueInfoSpec[];
  docString?: string;
}

export interface ModelSpec {
  graph: GraphSpec;
  irVersion?: number;
  /** Default: one entry, the default domain at opset 17. */
  opsetImports?: readonly { domain: string; version: number }[];
  producerName?: string;
  producerVersion?: string;
  docString?: string;
  metadata?: Readonly<Record<string, string>>;
}

export const DEFAULT_IR_VERSION = 8;
export const DEFAULT_OPSET = 17;

const ATTRIBUTE_TYPE = { float: 1, int: 2, string: 3, tensor: 4, floats: 6, ints: 7, strings: 8 } as const;

const ELEM_BYTES: Record<ElemType, number> = {
  float32: 4,
  uint8: 1,
  int8: 1,
  int32: 4,
  int64: 8,
  bool: 1,
  float16: 2,
  float64: 8,
};

function tensorBytes(t: TensorSpec): Uint8Array {
  const count = t.dims.reduce((a, b) => a * b, 1);
  if (t.data.length !== count) {
    throw new Error(`tensor ${t.name}: ${t.data.length} values for dims [${t.dims.join(', ')}] (${count})`);
  }
  const width = ELEM_BYTES[t.elemType];
  if (t.data.BYTES_PER_ELEMENT !== width) {
    throw new Error(`tensor ${t.name}: ${t.elemType} needs ${width}-byte elements, got ${t.data.BYTES_PER_ELEMENT}`);
  }
  const bytes = new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
  if (endianness() === 'LE' || width === 1) return bytes;
  // raw_data is little-endian by definition.
  const swapped = new Uint8Array(bytes.byteLength);
  for (let i = 0; i < bytes.byteLength; i += width) {
    for (let j = 0; j < width; j++) swapped[i + j] = bytes[i + width - 1 - j] as number;
  }
  return swapped;
}

function encodeTensor(t: TensorSpec): ProtoWriter {
  const w = new ProtoWriter();
  for (const d of t.dims) w.varint(1, d);
  w.varint(2, ELEM_TYPE_CODE[t.elemType]);
  w.string(8, t.name);
  w.bytes(9, tensorBytes(t));
  return w;
}

function encodeValueInfo(v: ValueInfoSpec): ProtoWriter {
  const tensorType = new ProtoWriter().varint(1, ELEM_TYPE_CODE[v.elemType]);
  if (v.dims !== undefined) {
    const shape = new ProtoWriter();
    for (const d of v.dims) {
      const dim = new ProtoWriter();
      if (typeof d === 'number') dim.varint(1, d);
      else dim.string(2, d);
      shape.message(1, dim);
    }
    tensorType.message(2, shape);
  }
  const type = new ProtoWriter().message(1, tensorType);
  const w = new ProtoWriter().string(1, v.name).message(2, type);
  if (v.docString !== undefined) w.string(3, v.docString);
  return w;
}

function encodeAttribute(name: string, a: AttributeSpec): ProtoWriter {
  const w = new ProtoWriter().string(1, name);
  switch (a.kind) {
    case 'float':
      w.float(2, a.value);
      break;
    case 'int':
      w.varint(3, a.value);
      break;
    case 'string':
      w.string(4, a.value);
      break;
    case 'tensor':
      w.message(5, encodeTensor(a.value));
      break;
    case 'floats':
      // Repeated scalars in AttributeProto are declared unpacked in onnx.proto.
      for (const f of a.value) w.float(7, f);
      break;
    case 'ints':
      for (const i of a.value) w.varint(8, i);
      break;
    case 'strings':
      for (const s of a.value) w.string(9, s);
      break;
  }
  w.varint(20, ATTRIBUTE_TYPE[a.kind]);
  return w;
}

function encodeNode(n: NodeSpec): ProtoWriter {
  const w = new ProtoWriter();
  for (const i of n.inputs) w.string(1, i);
  for (const o of n.outputs) w.string(2, o);
  if (n.name !== undefined) w.string(3, n.name);
  w.string(4, n.opType);
  for (const [name, a] of Object.entries(n.attributes ?? {})) w.message(5, encodeAttribute(name, a));
  if (n.domain !== undefined && n.domain !== '') w.string(7, n.domain);
  return w;
}

function encodeGraph(g: GraphSpec): ProtoWriter {
  const w = new ProtoWriter();
  for (const n of g.nodes) w.message(1, encodeNode(n));
  w.string(2, g.name);
  for (const t of g.initializers) w.message(5, encodeTensor(t));
  if (g.docString !== undefined) w.string(10, g.docString);
  for (const v of g.inputs) w.message(11, encodeValueInfo(v));
  for (const v of g.outputs) w.message(12, encodeValueInfo(v));
  for (const v of g.valueInfo ?? []) w.message(13, encodeValueInfo(v));
  return w;
}

/** Encodes a ModelProto as chunks (tensor payloads are shared with the spec, not copied). */
export function encodeModelChunks(m: ModelSpec): Uint8Array[] {
  const w = new ProtoWriter();
  w.varint(1, m.irVersion ?? DEFAULT_IR_VERSION);
  if (m.producerName !== undefined) w.string(2, m.producerName);
  if (m.producerVersion !== undefined) w.string(3, m.producerVersion);
  if (m.docString !== undefined) w.string(6, m.docString);
  w.message(7, encodeGraph(m.graph));
  for (const o of m.opsetImports ?? [{ domain: '', version: DEFAULT_OPSET }]) {
    const opset = new ProtoWriter();
    if (o.domain !== '') opset.string(1, o.domain);
    opset.varint(2, o.version);
    w.message(8, opset);
  }
  for (const [key, value] of Object.entries(m.metadata ?? {})) {
    w.message(14, new ProtoWriter().string(1, key).string(2, value));
  }
  return w.toChunks();
}

/** Encodes a ModelProto as one buffer. */
export function encodeModel(m: ModelSpec): Uint8Array {
  const chunks = encodeModelChunks(m);
  const out = new Uint8Array(chunks.reduce((a, c) => a + c.byteLength, 0));
  let offset = 0;
  for (const c of chunks) {
    out.set(c, offset);
    offset += c.byteLength;
  }
  return out;
}
