// Vector math on flat parameter vectors: the inner loops of update encoding, validation and server folding. Every
// function is a plain loop over typed arrays with no allocation inside the loop, because these run once per
// coordinate of a model for every update the server receives. Reductions accumulate in float64 (JS numbers) so that
// norms and dot products of million-element vectors do not drift.

import { ShapeError } from './tensor.ts';

export function assertSameLength(a: ArrayLike<number>, b: ArrayLike<number>, what: string): void {
  if (a.length !== b.length) throw new ShapeError(`${what}: lengths differ (${a.length} vs ${b.length})`);
}

/** next - base, written into `out` (a new vector unless given). */
export function delta(next: Float32Array, base: Float32Array, out = new Float32Array(next.length)): Float32Array {
  assertSameLength(next, base, 'delta');
  assertSameLength(next, out, 'delta output');
  for (let i = 0; i < next.length; i++) out[i] = next[i]! - base[i]!;
  return out;
}

/** y += a * x, in place: the weighted accumulate that folds an update into a running sum. */
export function axpy(y: Float32Array, a: number, x: Float32Array): void {
  assertSameLength(y, x, 'axpy');
  for (let i = 0; i < y.length; i++) y[i] = y[i]! + a * x[i]!;
}

/** x *= a, in place. */
export function scale(x: Float32Array, a: number): void {
  for (let i = 0; i < x.length; i++) x[i] = x[i]! * a;
}

export function dot(a: Float32Array, b: Float32Array): number {
  assertSameLength(a, b, 'dot');
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i]! * b[i]!;
  return s;
}

export function l2Norm(x: Float32Array): number {
  let s = 0;
  for (let i = 0; i < x.length; i++) s += x[i]! * x[i]!;
  return Math.sqrt(s);
}

/**
 * Scales x in place so its L2 norm is at most maxNorm, and returns the factor applied (1 when already within the
 * bound). The factor is what DP accounting and adaptive clipping need to know.
 */
export function clipToNorm(x: Float32Array, maxNorm: number): number {
  if (!(maxNorm >= 0)) throw new RangeError(`clip norm must be a non-negative number, got ${maxNorm}`);
  const norm = l2Norm(x);
  if (norm <= maxNorm) return 1;
  const factor = maxNorm / norm;
  scale(x, factor);
  return factor;
}

/** True when no element is NaN or infinite. */
export function allFinite(x: Float32Array): boolean {
  // A float32 squared cannot overflow a float64 (3.4e38^2 is about 1.2e77), so the sum of squares is finite exactly
  // when every element is; one pass serves both the finiteness check and the norm.
  return Number.isFinite(sumOfSquares(x));
}

/**
 * The sum of x[i]^2 in float64: the squared L2 norm, and NaN or Infinity exactly when some element is non-finite, so a
 * validator gets finiteness and norm from one pass. Runs as SIMD where available (see below), summing in four
 * interleaved lanes, so the last bits can differ from l2Norm(x)^2 and between runtimes; never in finiteness.
 */
export function sumOfSquares(x: Float32Array): number {
  const k = x.length >= SIMD_MIN_LENGTH ? scanKernel() : null;
  if (k === null) {
    let s = 0;
    for (let i = 0; i < x.length; i++) s += x[i]! * x[i]!;
    return s;
  }
  let s = 0;
  for (let start = 0; start < x.length; start += STAGE_FLOATS) {
    const n = Math.min(STAGE_FLOATS, x.length - start);
    const n4 = n & ~3;
    k.stage.set(x.subarray(start, start + n4));
    s += k.sumsq(k.stageByte, n4);
    for (let i = start + n4; i < start + n; i++) s += x[i]! * x[i]!;
  }
  return s;
}

/** A float32 vector that other vectors are repeatedly added into: the server accumulator's running sum. */
export interface SumVector {
  readonly data: Float32Array;
  /** Whether addScaled runs as WebAssembly SIMD (false: plain loop). Results are bit-identical either way. */
  readonly simd: boolean;
  /**
   * data[i] = data[i] + a * x[i] for i in [start, end), rounded exactly as that JS expression (float64 arithmetic,
   * one rounding to float32 on store). x must have data's length.
   */
  addScaled(a: number, x: Float32Array, start?: number, end?: number): void;
}

/**
 * A zeroed SumVector of `size` floats. With SIMD (the default where the runtime has it and the vector is large enough
 * to pay for it), data lives in its own WebAssembly memory next to a small staging area.
 */
export function createSumVector(size: number, options: { simd?: boolean } = {}): SumVector {
  const module = options.simd !== false && size >= SIMD_MIN_LENGTH ? simdModule() : null;
  const stageByte = alignUp(size * 4, 16);
  const pages = Math.ceil((stageByte + STAGE_FLOATS * 4) / 65536);
  let k: Kernel | null = null;
  if (module !== null && pages <= 65536) {
    try {
      k = instantiate(module, pages, stageByte);
    } catch {
      // Out of address space for another wasm memory, or over the engine's limit: the plain loop still works.
    }
  }
  if (k === null) {
    const data = new Float32Array(size);
    return {
      data,
      simd: false,
      addScaled(a, x, start = 0, end = data.length) {
        assertSameLength(data, x, 'addScaled');
        for (let i = start; i < end; i++) data[i] = data[i]! + a * x[i]!;
      },
    };
  }
  const kernel = k;
  const data = new Float32Array(kernel.memory.buffer, 0, size);
  return {
    data,
    simd: true,
    addScaled(a, x, start = 0, end = data.length) {
      assertSameLength(data, x, 'addScaled');
      // x lives in ordinary JS memory, which wasm cannot address: each stage-sized piece is copied next to the data
      // (it stays in cache) and added from there.
      for (let from = start; from < end; from += STAGE_FLOATS) {
        const n = Math.min(STAGE_FLOATS, end - from);
        const n4 = n & ~7;
        kernel.stage.set(x.subarray(from, from + n4));
        if (a === 1) kernel.add(from * 4, kernel.stageByte, n4);
        else kernel.axpy(from * 4, kernel.stageByte, n4, a);
        for (let i = from + n4; i < from + n; i++) data[i] = data[i]! + a * x[i]!;
      }
    },
  };
}

// ---- WebAssembly SIMD kernels ---------------------------------------------------------------------------------------
// V8 compiles the loops above to scalar code, about 1 ns per element: several times slower than memory bandwidth, and
// the server runs the norm scan and the fold over every coordinate of every update. 128-bit WebAssembly SIMD (Node
// >= 16.4 and current browsers) brings both near memory speed. The module is 300-odd bytes, assembled below rather
// than shipped as a binary; where SIMD is missing, validation fails and the plain loops run instead. In WAT:
//
//   (import "m" "memory" (memory 1))
//   (func $axpy (param $y i32) (param $x i32) (param $n i32) (param $a f64)   ;; n floats, n % 8 == 0, byte pointers
//     per 4 floats: y[0..4] = demote(promote(y) + a * promote(x)), two float64x2 halves at a time
//   (func $add (param $y i32) (param $x i32) (param $n i32)                  ;; the a === 1 case, in float32
//     per 4 floats: y[0..4] = f32x4.add(y, x)
//   (func $sumsq (param $p i32) (param $n i32) (result f64)
//     lanes (s0, s1) += promote(p[0..2])^2, (s2, s3) += promote(p[2..4])^2; returns (s0 + s2) + (s1 + s3)
//
// The fold's float64 arithmetic and single rounding match `y[i] = y[i] + a * x[i]` in JS bit for bit (wasm never fuses
// a multiply-add), so the SIMD and plain paths agree exactly.

/** Below this many floats a plain loop is fast enough and not worth a wasm memory. */
const SIMD_MIN_LENGTH = 4096;
/** Floats copied into wasm memory per kernel call: 32 KiB, small enough to be read back from cache. */
const STAGE_FLOATS = 8192;

interface Kernel {
  readonly memory: WebAssembly.Memory;
  readonly stage: Float32Array;
  readonly stageByte: number;
  axpy(y: number, x: number, n: number, a: number): void;
  add(y: number, x: number, n: number): void;
  sumsq(p: number, n: number): number;
}

let compiled: WebAssembly.Module | null | undefined;
let scanner: Kernel | null | undefined;

function simdModule(): WebAssembly.Module | null {
  if (compiled === undefined) {
    compiled = null;
    try {
      const bytes = assembleKernels();
      if (typeof WebAssembly === 'object' && WebAssembly.validate(bytes)) compiled = new WebAssembly.Module(bytes);
    } catch {
      // No WebAssembly (or compilation refused): plain loops.
    }
  }
  return compiled;
}

function instantiate(module: WebAssembly.Module, pages: number, stageByte: number): Kernel {
  const memory = new WebAssembly.Memory({ initial: pages, maximum: pages });
  const { axpy, add, sumsq } = new WebAssembly.Instance(module, { m: { memory } }).exports as unknown as Kernel;
  return { memory, stage: new Float32Array(memory.buffer, stageByte, STAGE_FLOATS), stageByte, axpy, add, sumsq };
}

/** The kernel sumOfSquares stages through: one page, shared (calls are synchronous, so they never interleave). */
function scanKernel(): Kernel | null {
  if (scanner === undefined) {
    const module = simdModule();
    scanner = null;
    try {
      if (module !== null) scanner = instantiate(module, Math.ceil((STAGE_FLOATS * 4) / 65536), 0);
    } catch {
      // as in createSumVector
    }
  }
  return scanner;
}

function alignUp(n: number, to: number): number {
  return Math.ceil(n / to) * to;
}

function assembleKernels(): Uint8Array<ArrayBuffer> {
  const u32 = (n: number): number[] => {
    const out: number[] = [];
    do {
      const b = n & 0x7f;
      n >>>= 7;
      out.push(n === 0 ? b : b | 0x80);
    } while (n !== 0);
    return out;
  };
  const vec = (items: number[][]): number[] => [...u32(items.length), ...items.flat()];
  const name = (s: string): number[] => vec([...s].map((c) => [c.charCodeAt(0)]));
  const section = (id: number, body: number[]): number[] => [id, ...u32(body.length), ...body];
  const [I32, F64, V128] = [0x7f, 0x7c, 0x7b];
  const get = (i: number) => [0x20, i];
  const set = (i: number) => [0x21, i];
  const simd = (op: number, ...imm: number[]) => [0xfd, ...u32(op), ...imm];
  // v128.load/store with align=4 bytes (ranges may start at any float) and a small constant byte offset.
  const load = (offset = 0) => simd(0x00, 2, offset);
  const store = (offset = 0) => simd(0x0b, 2, offset);
  const shuffle = (...lanes: number[]) => simd(0x0d, ...lanes);
  const high = shuffle(8, 9, 10, 11, 12, 13, 14, 15, 0, 1, 2, 3, 4, 5, 6, 7); // (v, v) -> floats 2, 3 in lanes 0, 1
  const promoteLow = simd(0x5f); // f64x2.promote_low_f32x4
  const demote = simd(0x5e); // f32x4.demote_f64x2_zero
  const [f64x2Add, f64x2Mul, f64x2Splat] = [simd(0xf0), simd(0xf2), simd(0x14)];
  const i32Const = (n: number) => [0x41, n]; // small non-negative n only
  const [i32Add, i32Shl, i32GeU, f64Add] = [[0x6a], [0x74], [0x4f], [0xa0]];
  const [block, loop, end] = [[0x02, 0x40], [0x03, 0x40], [0x0b]];
  const brIf = (depth: number) => [0x0d, depth];
  const br = (depth: number) => [0x0c, depth];
  const advance = (ptr: number, bytes: number) => [...get(ptr), ...i32Const(bytes), ...i32Add, ...set(ptr)];
  const endOf = (ptr: number, n: number, out: number) => [...get(ptr), ...get(n), ...i32Const(2), ...i32Shl, ...i32Add, ...set(out)];

  // axpy: params y=0, x=1, n=2 (a multiple of 8), a=3; locals av=4 (v128), end=5 (i32), yv=6, xv=7 (v128). Two
  // vectors per iteration: the float64 work is compute-bound and the unrolled loop spends less on its own bookkeeping.
  const half = (yHalf: number[], xHalf: number[]) => [...yHalf, ...promoteLow, ...get(4), ...xHalf, ...promoteLow, ...f64x2Mul, ...f64x2Add, ...demote];
  const fourFloats = (offset: number) => [
    ...get(0), ...load(offset), ...set(6),
    ...get(1), ...load(offset), ...set(7),
    ...get(0),
    ...half(get(6), get(7)),
    ...half([...get(6), ...get(6), ...high], [...get(7), ...get(7), ...high]),
    ...shuffle(0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23),
    ...store(offset),
  ];
  const axpy = [
    ...vec([[1, V128], [1, I32], [2, V128]]),
    ...get(3), ...f64x2Splat, ...set(4),
    ...endOf(0, 2, 5),
    ...block, ...loop,
    ...get(0), ...get(5), ...i32GeU, ...brIf(1),
    ...fourFloats(0), ...fourFloats(16),
    ...advance(0, 32), ...advance(1, 32),
    ...br(0),
    ...end, ...end, ...end,
  ];
  // add: params y=0, x=1, n=2; local end=3. y + x rounded once to float32 is what float64 addition then rounding
  // gives (double rounding is harmless for a sum of two float32s), so a === 1 can skip the float64 detour.
  const add = [
    ...vec([[1, I32]]),
    ...endOf(0, 2, 3),
    ...block, ...loop,
    ...get(0), ...get(3), ...i32GeU, ...brIf(1),
    ...get(0), ...get(0), ...load(), ...get(1), ...load(), ...simd(0xe4), ...store(), // f32x4.add
    ...advance(0, 16), ...advance(1, 16),
    ...br(0),
    ...end, ...end, ...end,
  ];
  // sumsq: params p=0, n=1; locals lo=2, hi=3 (v128, zero-initialised), end=4 (i32), v=5, w=6 (v128)
  const square = (into: number) => [...get(into), ...get(6), ...get(6), ...f64x2Mul, ...f64x2Add, ...set(into)];
  const sumsq = [
    ...vec([[2, V128], [1, I32], [2, V128]]),
    ...endOf(0, 1, 4),
    ...block, ...loop,
    ...get(0), ...get(4), ...i32GeU, ...brIf(1),
    ...get(0), ...load(), ...set(5),
    ...get(5), ...promoteLow, ...set(6), ...square(2),
    ...get(5), ...get(5), ...high, ...promoteLow, ...set(6), ...square(3),
    ...advance(0, 16),
    ...br(0),
    ...end, ...end,
    ...get(2), ...get(3), ...f64x2Add, ...set(2),
    ...get(2), ...simd(0x21, 0), ...get(2), ...simd(0x21, 1), ...f64Add, // f64x2.extract_lane 0 + lane 1
    ...end,
  ];
  return new Uint8Array([
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
    ...section(1, vec([
      [0x60, ...vec([[I32], [I32], [I32], [F64]]), 0],
      [0x60, ...vec([[I32], [I32]]), ...vec([[F64]])],
      [0x60, ...vec([[I32], [I32], [I32]]), 0],
    ])),
    ...section(2, vec([[...name('m'), ...name('memory'), 0x02, 0x00, 1]])),
    ...section(3, vec([[0], [1], [2]])),
    ...section(7, vec([[...name('axpy'), 0x00, 0], [...name('sumsq'), 0x00, 1], [...name('add'), 0x00, 2]])),
    ...section(10, vec([axpy, sumsq, add].map((body) => [...u32(body.length), ...body]))),
  ]);
}

/** Index of the first NaN or infinite element, or -1; for error messages after allFinite says no. */
export function firstNonFinite(x: Float32Array): number {
  for (let i = 0; i < x.length; i++) if (!Number.isFinite(x[i]!)) return i;
  return -1;
}
