// The IDX format of the MNIST family (LeCun et al.): magic [0, 0, dtype, rank], rank big-endian uint32 dimensions,
// then the values row-major. Only unsigned bytes (dtype 0x08), the one type MNIST-like datasets use. Pure: bytes in.
import { IdxError } from './errors.ts';

const UBYTE = 0x08;

export interface IdxArray {
  readonly dims: readonly number[];
  /** A view into the input bytes, not a copy. */
  readonly data: Uint8Array;
}

/** Paired images and labels, as two IDX files of one split hold them. */
export interface IdxImageSet {
  readonly n: number;
  readonly height: number;
  readonly width: number;
  /** n * height * width raw pixels, row-major. */
  readonly pixels: Uint8Array;
  readonly labels: Uint8Array;
}

/** Parses one IDX file; rejects a wrong magic, another dtype, and data shorter or longer than the dimensions say. */
export function parseIdx(bytes: Uint8Array, source?: string): IdxArray {
  if (bytes.length < 4) throw new IdxError(`truncated: ${bytes.length} bytes, no room for the 4-byte magic number`, source);
  const dtype = bytes[2]!;
  const rank = bytes[3]!;
  if (bytes[0] !== 0 || bytes[1] !== 0) {
    throw new IdxError(`bad magic number 0x${hex(bytes.subarray(0, 4))}: an IDX file starts with two zero bytes (is it still gzipped?)`, source);
  }
  if (dtype !== UBYTE) throw new IdxError(`unsupported dtype 0x${dtype.toString(16)}, only unsigned bytes (0x08) are read`, source);
  const headerBytes = 4 + 4 * rank;
  if (bytes.length < headerBytes) throw new IdxError(`truncated: ${bytes.length} bytes, the header of a rank-${rank} file needs ${headerBytes}`, source);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const dims = Array.from({ length: rank }, (_, d) => view.getUint32(4 + 4 * d));
  const size = dims.reduce((a, b) => a * b, 1);
  const have = bytes.length - headerBytes;
  if (have !== size) {
    const what = have < size ? 'truncated' : 'trailing bytes';
    throw new IdxError(`${what}: dims [${dims.join(', ')}] need ${size} data bytes, the file has ${have}`, source);
  }
  return { dims, data: bytes.subarray(headerBytes) };
}

/** Parses an images file (rank 3: n, height, width) and its labels file (rank 1: n), checking they agree. */
export function parseIdxImageSet(imageBytes: Uint8Array, labelBytes: Uint8Array, source?: string): IdxImageSet {
  const images = parseIdx(imageBytes, source && `${source} images`);
  const labels = parseIdx(labelBytes, source && `${source} labels`);
  const [n, height, width] = images.dims;
  if (images.dims.length !== 3) throw new IdxError(`images must have rank 3 (n, height, width), got [${images.dims.join(', ')}]`, source);
  if (labels.dims.length !== 1) throw new IdxError(`labels must have rank 1, got [${labels.dims.join(', ')}]`, source);
  if (labels.dims[0] !== n) throw new IdxError(`count mismatch: ${n} images but ${labels.dims[0]} labels`, source);
  return { n: n!, height: height!, width: width!, pixels: images.data, labels: labels.data };
}

function hex(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}
