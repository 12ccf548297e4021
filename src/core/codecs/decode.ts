// The streaming decoder of format.ts. Bytes may arrive in chunks of any size (an HTTP body as it streams in); each
// block is checked and written into the output as soon as it is complete, so at most one block is ever buffered.
// Every inconsistency is a CodecError, and a decoder that threw is dead: finish() never returns a half-checked vector.
import { CodecError } from './errors.ts';
import { blockBytes, FLAG_SPARSE, HEADER_BYTES, MAGIC, VALUE_CODES } from './format.ts';
import { halfToFloatTable } from './half.ts';
import { codecLabel, isQuantized, keptCount, MAX_BLOCK_SIZE, type CodecSpec, type ValueFormat } from './spec.ts';

export interface DecodeExpectation {
  /** The codec the reader asked for: any other one is a mismatch. */
  spec: CodecSpec;
  /** The vector length the reader expects (the model's or the plan's parameter count). */
  n: number;
}

/** What an encoding's header says. */
export interface CodecHeader {
  values: ValueFormat;
  sparse: boolean;
  n: number;
  k: number;
  blockSize: number;
}

/** Without an expectation, a header may not ask for more than this many entries (memory is allocated for them). */
export const DEFAULT_MAX_ENTRIES = 1 << 28;

export class CodecDecoder {
  private header: CodecHeader | undefined;
  private out: Float32Array | undefined;
  private pending = new Uint8Array(HEADER_BYTES);
  private fill = 0;
  /** Entries decoded so far, and the last sparse index (for the increasing-order check). */
  private done = 0;
  private lastIndex = -1;
  private failed: CodecError | undefined;
  private readonly table: Float32Array | undefined;
  private readonly bf = new Float32Array(1);
  private readonly bfBits = new Uint32Array(this.bf.buffer);

  constructor(private readonly expect?: DecodeExpectation, private readonly maxEntries = DEFAULT_MAX_ENTRIES) {
    this.table = expect?.spec.values === 'fp16' ? halfToFloatTable() : undefined;
  }

  /** Feeds the next bytes; throws CodecError at the first inconsistency. */
  push(chunk: Uint8Array): void {
    if (this.failed !== undefined) throw this.failed;
    try {
      this.pushChecked(chunk);
    } catch (e) {
      if (e instanceof CodecError) this.failed = e;
      throw e;
    }
  }

  /** The decoded vector, once every block has arrived; throws CodecError when the encoding is incomplete. */
  finish(): Float32Array {
    if (this.failed !== undefined) throw this.failed;
    const h = this.header;
    if (h === undefined) {
      this.failed = new CodecError('truncated', `encoding ends after ${this.fill} bytes, inside the ${HEADER_BYTES}-byte header`);
      throw this.failed;
    }
    if (this.done < h.k || this.fill > 0) {
      this.failed = new CodecError('truncated', `encoding ends after ${this.done} of ${h.k} entries${this.fill > 0 ? ` and ${this.fill} bytes of the next block` : ''}`);
      throw this.failed;
    }
    return this.out!;
  }

  /** The header, once its bytes have arrived. */
  get info(): CodecHeader | undefined {
    return this.header;
  }

  private pushChecked(chunk: Uint8Array): void {
    let off = 0;
    while (off < chunk.length) {
      const need = this.nextUnitBytes();
      if (need === 0) throw new CodecError('trailing_bytes', `${chunk.length - off} byte(s) after the last block`);
      if (this.fill === 0 && chunk.length - off >= need) {
        this.consume(chunk, off);
        off += need;
        continue;
      }
      const take = Math.min(need - this.fill, chunk.length - off);
      this.pending.set(chunk.subarray(off, off + take), this.fill);
      this.fill += take;
      off += take;
      if (this.fill === need) {
        this.fill = 0;
        this.consume(this.pending, 0);
      }
    }
  }

  /** Bytes of the next unit to decode: the header, the next block, or 0 when everything has arrived. */
  private nextUnitBytes(): number {
    const h = this.header;
    if (h === undefined) return HEADER_BYTES;
    if (this.done >= h.k) return 0;
    return blockBytes(h.values, h.sparse, Math.min(h.blockSize, h.k - this.done));
  }

  private consume(buf: Uint8Array, off: number): void {
    if (this.header === undefined) this.readHeader(buf, off);
    else this.readBlock(buf, off);
  }

  private readHeader(buf: Uint8Array, off: number): void {
    const view = new DataView(buf.buffer, buf.byteOffset + off, HEADER_BYTES);
    const bad = (m: string) => new CodecError('bad_header', m);
    if (view.getUint32(0, true) !== MAGIC) throw bad('not a Tessera codec encoding (magic "TQC1" missing)');
    const code = view.getUint8(4);
    const values = VALUE_CODES[code];
    if (values === undefined) throw bad(`unknown value format ${code}`);
    const flags = view.getUint8(5);
    if ((flags & ~FLAG_SPARSE) !== 0) throw bad(`unknown flags 0x${flags.toString(16)}`);
    if (view.getUint16(6, true) !== 0) throw bad('reserved header bytes are not zero');
    const sparse = (flags & FLAG_SPARSE) !== 0;
    const n = view.getUint32(8, true);
    const k = view.getUint32(12, true);
    const blockSize = view.getUint32(16, true);
    if (blockSize < 1 || blockSize > MAX_BLOCK_SIZE) throw bad(`block size ${blockSize} outside [1, ${MAX_BLOCK_SIZE}]`);
    if (k > n) throw bad(`${k} stored entries in a vector of ${n}`);
    if (!sparse && k !== n) throw bad(`a dense encoding stores ${k} of ${n} entries`);
    const header: CodecHeader = { values, sparse, n, k, blockSize };
    const e = this.expect;
    if (e !== undefined) {
      const want: CodecHeader = { values: e.spec.values, sparse: e.spec.topK !== undefined, n: e.n, k: keptCount(e.n, e.spec), blockSize: e.spec.blockSize };
      for (const key of ['values', 'sparse', 'n', 'k', 'blockSize'] as const) {
        if (header[key] !== want[key]) {
          throw new CodecError('mismatch', `encoding has ${key} ${header[key]} where codec ${codecLabel(e.spec)} on ${e.n} entries needs ${want[key]}`);
        }
      }
    } else if (n > this.maxEntries) {
      throw bad(`${n} entries exceed the decoder's limit of ${this.maxEntries}`);
    }
    this.header = header;
    this.out = new Float32Array(n);
    this.pending = new Uint8Array(blockBytes(values, sparse, Math.min(blockSize, k)));
  }

  private readBlock(buf: Uint8Array, off: number): void {
    const h = this.header!;
    const out = this.out!;
    const b = Math.min(h.blockSize, h.k - this.done);
    const view = new DataView(buf.buffer, buf.byteOffset + off, blockBytes(h.values, h.sparse, b));
    let pos = 0;
    let scale = 0;
    if (isQuantized(h.values)) {
      scale = view.getFloat32(0, true);
      if (!(scale >= 0 && scale < Infinity)) throw new CodecError('bad_scale', `block ${this.blockNumber()} has scale ${scale}`);
      pos = 4;
    }
    // Dense blocks write entries done..done+b-1; sparse ones write the indices they carry, checked first.
    let idx: Uint32Array | undefined;
    if (h.sparse) {
      idx = new Uint32Array(b);
      let last = this.lastIndex;
      for (let j = 0; j < b; j++) {
        const i = view.getUint32(pos + 4 * j, true);
        if (i >= h.n) throw new CodecError('bad_index', `index ${i} is out of range for ${h.n} entries`);
        if (i <= last) throw new CodecError('bad_index', `index ${i} follows ${last}: indices must be strictly increasing (no repeats)`);
        idx[j] = i;
        last = i;
      }
      this.lastIndex = last;
      pos += 4 * b;
    }
    const base = this.done;
    switch (h.values) {
      case 'fp32':
        if (idx === undefined && (view.byteOffset + pos) % 4 === 0) {
          // Aligned dense block: one copy (little-endian host, as safetensors.ts assumes).
          out.set(new Float32Array(view.buffer, view.byteOffset + pos, b), base);
          break;
        }
        for (let j = 0; j < b; j++) out[idx === undefined ? base + j : idx[j]!] = view.getFloat32(pos + 4 * j, true);
        break;
      case 'fp16': {
        const t = this.table ?? halfToFloatTable();
        for (let j = 0; j < b; j++) out[idx === undefined ? base + j : idx[j]!] = t[view.getUint16(pos + 2 * j, true)]!;
        break;
      }
      case 'bf16':
        for (let j = 0; j < b; j++) {
          this.bfBits[0] = view.getUint16(pos + 2 * j, true) << 16;
          out[idx === undefined ? base + j : idx[j]!] = this.bf[0]!;
        }
        break;
      case 'int8':
        for (let j = 0; j < b; j++) {
          const level = view.getInt8(pos + j);
          if (level === -128) throw new CodecError('bad_value', `int8 level -128 in block ${this.blockNumber()} (levels are -127..127)`);
          out[idx === undefined ? base + j : idx[j]!] = level * scale;
        }
        break;
      case 'int4':
        for (let j = 0; j < b; j++) {
          const byte = view.getUint8(pos + (j >> 1));
          const nibble = (j & 1) === 0 ? byte & 0xf : byte >> 4;
          if (nibble === 8) throw new CodecError('bad_value', `int4 level -8 in block ${this.blockNumber()} (levels are -7..7)`);
          out[idx === undefined ? base + j : idx[j]!] = ((nibble << 28) >> 28) * scale;
        }
        if ((b & 1) === 1 && view.getUint8(pos + (b >> 1)) >> 4 !== 0) {
          throw new CodecError('bad_value', `block ${this.blockNumber()} has a nonzero padding nibble`);
        }
        break;
      case 'int2':
        for (let j = 0; j < b; j++) {
          const code = (view.getUint8(pos + (j >> 2)) >> (2 * (j & 3))) & 0x3;
          if (code === 2) throw new CodecError('bad_value', `int2 level -2 in block ${this.blockNumber()} (levels are -1..1)`);
          out[idx === undefined ? base + j : idx[j]!] = ((code << 30) >> 30) * scale;
        }
        if ((b & 3) !== 0 && view.getUint8(pos + (b >> 2)) >> (2 * (b & 3)) !== 0) {
          throw new CodecError('bad_value', `block ${this.blockNumber()} has nonzero padding bits`);
        }
        break;
    }
    this.done += b;
  }

  private blockNumber(): number {
    return Math.floor(this.done / this.header!.blockSize);
  }
}

/** Decodes a whole encoding at once (a streaming decoder fed one chunk). */
export function decodeVector(bytes: Uint8Array, expect?: DecodeExpectation): Float32Array {
  const d = new CodecDecoder(expect);
  d.push(bytes);
  return d.finish();
}
