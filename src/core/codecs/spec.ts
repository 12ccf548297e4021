// Which codec an update (or a downlink delta) is encoded with: a value format, optionally after top-k
// sparsification. The coordinator names one per lease (Lease.codec); absent means dense fp32, today's safetensors
// upload, so devices that predate codecs keep working.
//
//   values  fp32 | fp16 | bf16          round to nearest even, deterministic
//           int8 | int4 | int2          unbiased stochastic quantization with one fp32 scale per block of
//                                       `blockSize` values (QSGD, Alistarh et al., NeurIPS 2017; max-norm scaling as in
//                                       TernGrad, Wen et al., NeurIPS 2017; per-block scales as in Dettmers et al.,
//                                       "8-bit Optimizers via Block-wise Quantization", ICLR 2022). int2 has the levels
//                                       -1, 0, 1: TernGrad's stochastic ternarization, per block, in 2 bits a value
//   topK    fraction of entries kept, the largest in magnitude (Stich, Cordonnier, Jaggi, "Sparsified SGD with
//           Memory", NeurIPS 2018); the device keeps what was dropped and adds it to its next update (error feedback)
import { z } from 'zod';
import { CodecError } from './errors.ts';

export const VALUE_FORMATS = ['fp32', 'fp16', 'bf16', 'int8', 'int4', 'int2'] as const;
export type ValueFormat = (typeof VALUE_FORMATS)[number];

export const MAX_BLOCK_SIZE = 65_536;

export const CodecSpec = z.object({
  values: z.enum(VALUE_FORMATS).default('fp32'),
  /** Values per block: one scale each for int8/int4/int2, and the unit a streaming decoder checks and writes at once. */
  blockSize: z.number().int().min(1).max(MAX_BLOCK_SIZE).default(256),
  /** Keep only this fraction of the entries (the largest |x|); absent: dense. */
  topK: z.number().gt(0).max(1).optional(),
}).strict();
export type CodecSpec = z.infer<typeof CodecSpec>;
export type CodecSpecInput = z.input<typeof CodecSpec>;

export const DENSE_FP32: CodecSpec = { values: 'fp32', blockSize: 256 };

/** True for the default codec, which travels as plain safetensors. */
export function isDenseFp32(spec: CodecSpec | undefined): boolean {
  return spec === undefined || (spec.values === 'fp32' && spec.topK === undefined);
}

/** Whether decoding loses information, so that a device should keep the difference (error feedback). */
export function isSparse(spec: CodecSpec): boolean {
  return spec.topK !== undefined;
}

export function isQuantized(values: ValueFormat): values is 'int8' | 'int4' | 'int2' {
  return values === 'int8' || values === 'int4' || values === 'int2';
}

/** The codec as a short stable label, e.g. "topk0.01+int8/256", for errors, metrics and reports. */
export function codecLabel(spec: CodecSpec | undefined): string {
  if (spec === undefined) return 'fp32';
  const values = isQuantized(spec.values) ? `${spec.values}/${spec.blockSize}` : spec.values;
  return spec.topK === undefined ? values : `topk${spec.topK}+${values}`;
}

/** Same codec: what the coordinator asked for is what the device used. Block size counts only where it changes bytes. */
export function sameCodec(a: CodecSpec | undefined, b: CodecSpec | undefined): boolean {
  const x = a ?? DENSE_FP32;
  const y = b ?? DENSE_FP32;
  return x.values === y.values && x.topK === y.topK && x.blockSize === y.blockSize;
}

/** Checks a spec that did not come through zod (a plain object in code), with a CodecError. */
export function checkSpec(spec: CodecSpec): CodecSpec {
  const r = CodecSpec.safeParse(spec);
  if (!r.success) throw new CodecError('bad_spec', `invalid codec: ${r.error.issues.map((i) => `${i.path.join('.') || 'spec'}: ${i.message}`).join('; ')}`);
  return r.data;
}

/** How many of n entries a spec keeps: round(topK * n), at least one of a non-empty vector; n when dense. */
export function keptCount(n: number, spec: CodecSpec): number {
  if (spec.topK === undefined || n === 0) return n;
  return Math.min(n, Math.max(1, Math.round(spec.topK * n)));
}
