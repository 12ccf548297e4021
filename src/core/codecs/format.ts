// The byte layout of an encoded vector, shared by the encoder, the streaming decoder and the size formula. All
// numbers are little-endian.
//
//   header (20 bytes)
//     0  "TQC1"            magic and format version
//     4  u8  values         0 fp32, 1 fp16, 2 bf16, 3 int8, 4 int4, 5 int2
//     5  u8  flags          bit 0: sparse (indices present); other bits zero
//     6  u16 reserved       zero
//     8  u32 n              length of the dense vector
//    12  u32 k              entries stored (n when dense)
//    16  u32 blockSize      entries per block
//   blocks: the k stored entries in runs of blockSize (the last may be shorter), each
//     [f32 scale]           int8/int4/int2 only: the entry is level * scale
//     [u32 index x b]       sparse only: strictly increasing across the whole vector, < n
//     values                fp32 4 B, fp16/bf16 2 B, int8 1 B (-127..127), int4 4 bits (-7..7, two's complement,
//                           low nibble first; an odd block's last high nibble is zero), int2 2 bits (-1..1, two's
//                           complement, so 0b10 is invalid; lowest bits first; unused bits of a block's last byte zero)
//
// Blocks carry their own scale and indices, so a decoder can check and write each block as soon as its bytes arrive
// and never holds more than one block; the size of every block is known from the header alone.
import { isQuantized, keptCount, type CodecSpec, type ValueFormat } from './spec.ts';

export const MAGIC = 0x31435154; // "TQC1" read as a little-endian u32
export const HEADER_BYTES = 20;
export const FLAG_SPARSE = 1;
export const VALUE_CODES: readonly ValueFormat[] = ['fp32', 'fp16', 'bf16', 'int8', 'int4', 'int2'];

export function valueBytes(values: ValueFormat, b: number): number {
  switch (values) {
    case 'fp32': return 4 * b;
    case 'fp16':
    case 'bf16': return 2 * b;
    case 'int8': return b;
    case 'int4': return Math.ceil(b / 2);
    case 'int2': return Math.ceil(b / 4);
  }
}

/** Bytes of one block of b entries. */
export function blockBytes(values: ValueFormat, sparse: boolean, b: number): number {
  return (isQuantized(values) ? 4 : 0) + (sparse ? 4 * b : 0) + valueBytes(values, b);
}

/** Bytes of the blocks holding k entries. */
export function bodyBytes(values: ValueFormat, sparse: boolean, k: number, blockSize: number): number {
  const full = Math.floor(k / blockSize);
  const rest = k - full * blockSize;
  return full * blockBytes(values, sparse, blockSize) + (rest > 0 ? blockBytes(values, sparse, rest) : 0);
}

/**
 * The exact size of the encoding of any n-vector with `spec`, known before encoding (top-k keeps a fixed count, and
 * every field has a fixed width), so a device can tell its upload size, and the coordinator can refuse a body of any
 * other length, up front.
 */
export function encodedSize(n: number, spec: CodecSpec): number {
  return HEADER_BYTES + bodyBytes(spec.values, spec.topK !== undefined, keptCount(n, spec), spec.blockSize);
}
