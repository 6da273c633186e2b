// Protocol-buffer wire encoding for the handful of field kinds onnx.proto uses. Output is kept as a list of
// chunks so that large tensor payloads (hundreds of MB for a ViT) are referenced, never copied, until the
// caller concatenates or streams them to a file.

const WIRE_VARINT = 0;
const WIRE_FIXED64 = 1;
const WIRE_LENGTH_DELIMITED = 2;
const WIRE_FIXED32 = 5;

/** Payloads at least this large are kept as their own chunk instead of being copied into the scratch buffer. */
const SHARE_THRESHOLD = 4096;

export class ProtoWriter {
  private readonly chunks: Uint8Array[] = [];
  private scratch: number[] = [];
  private flushedLength = 0;

  /** Total encoded length in bytes. */
  get length(): number {
    return this.flushedLength + this.scratch.length;
  }

  /** A varint field (int32, int64, uint64, enum, bool). Negative values take ten bytes, as int64 requires. */
  varint(field: number, value: number | bigint): this {
    this.tag(field, WIRE_VARINT);
    this.rawVarint(value);
    return this;
  }

  /** A float field (fixed32, little-endian). */
  float(field: number, value: number): this {
    this.tag(field, WIRE_FIXED32);
    const b = new Uint8Array(4);
    new DataView(b.buffer).setFloat32(0, value, true);
    this.pushBytes(b);
    return this;
  }

  /** A double field (fixed64, little-endian). */
  double(field: number, value: number): this {
    this.tag(field, WIRE_FIXED64);
    const b = new Uint8Array(8);
    new DataView(b.buffer).setFloat64(0, value, true);
    this.pushBytes(b);
    return this;
  }

  /** A string field, UTF-8 encoded. */
  string(field: number, value: string): this {
    return this.bytes(field, new TextEncoder().encode(value));
  }

  /** A bytes field. Large payloads are shared with the caller, not copied: do not mutate them before encoding ends. */
  bytes(field: number, value: Uint8Array): this {
    this.tag(field, WIRE_LENGTH_DELIMITED);
    this.rawVarint(value.byteLength);
    this.pushBytes(value);
    return this;
  }

  /** An embedded message field. */
  message(field: number, child: ProtoWriter): this {
    this.tag(field, WIRE_LENGTH_DELIMITED);
    this.rawVarint(child.length);
    child.flush();
    this.flush();
    for (const c of child.chunks) this.chunks.push(c);
    this.flushedLength += child.flushedLength;
    return this;
  }

  /** A packed repeated varint field (repeated int64 [packed = true]). */
  packedVarints(field: number, values: ArrayLike<number | bigint>): this {
    const inner = new ProtoWriter();
    for (let i = 0; i < values.length; i++) inner.rawVarint(values[i] as number | bigint);
    inner.flush();
    this.tag(field, WIRE_LENGTH_DELIMITED);
    this.rawVarint(inner.length);
    for (const c of inner.chunks) this.pushBytes(c);
    return this;
  }

  /** A packed repeated float field. */
  packedFloats(field: number, values: ArrayLike<number>): this {
    const b = new Uint8Array(values.length * 4);
    const view = new DataView(b.buffer);
    for (let i = 0; i < values.length; i++) view.setFloat32(i * 4, values[i] as number, true);
    return this.bytes(field, b);
  }

  /** The encoded message as chunks, in order (no copy of shared payloads). */
  toChunks(): Uint8Array[] {
    this.flush();
    return [...this.chunks];
  }

  /** The encoded message as one buffer. */
  toBytes(): Uint8Array {
    const out = new Uint8Array(this.length);
    let offset = 0;
    for (const c of this.toChunks()) {
      out.set(c, offset);
      offset += c.byteLength;
    }
    return out;
  }

  private tag(field: number, wireType: number): void {
    if (!Number.isInteger(field) || field < 1) throw new Error(`invalid protobuf field number ${field}`);
    this.rawVarint(field * 8 + wireType);
  }

  private rawVarint(value: number | bigint): void {
    if (typeof value === 'number') {
      if (!Number.isSafeInteger(value)) throw new Error(`varint value ${value} is not a safe integer`);
      if (value >= 0) {
        let v = value;
        while (v >= 0x80) {
          this.scratch.push((v % 0x80) | 0x80);
          v = Math.floor(v / 0x80);
        }
        this.scratch.push(v);
        return;
      }
    }
    // Negative int64 values are encoded as their 64-bit two's complement.
    let v = BigInt.asUintN(64, BigInt(value));
    while (v >= 0x80n) {
      this.scratch.push(Number(v & 0x7fn) | 0x80);
      v >>= 7n;
    }
    this.scratch.push(Number(v));
  }

  private pushBytes(b: Uint8Array): void {
    if (b.byteLength >= SHARE_THRESHOLD) {
      this.flush();
      this.chunks.push(b);
      this.flushedLength += b.byteLength;
    } else {
      for (let i = 0; i < b.byteLength; i++) this.scratch.push(b[i] as number);
    }
  }

  private flush(): void {
    if (this.scratch.length === 0) return;
    this.chunks.push(Uint8Array.from(this.scratch));
    this.flushedLength += this.scratch.length;
    this.scratch = [];
  }
}
