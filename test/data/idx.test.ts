import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { IdxError } from '../../src/data/errors.ts';
import { parseIdx, parseIdxImageSet } from '../../src/data/idx.ts';

/** A ubyte IDX file with the given dims and values 0, 1, 2, ... */
function idxBytes(dims: number[], dataBytes = dims.reduce((a, b) => a * b, 1)): Uint8Array {
  const bytes = new Uint8Array(4 + 4 * dims.length + dataBytes);
  const view = new DataView(bytes.buffer);
  bytes.set([0, 0, 0x08, dims.length]);
  dims.forEach((d, i) => view.setUint32(4 + 4 * i, d));
  for (let i = 0; i < dataBytes; i++) bytes[4 + 4 * dims.length + i] = i % 256;
  return bytes;
}

const rejects = (f: () => unknown, pattern: RegExp): void => {
  assert.throws(f, (e: unknown) => e instanceof IdxError && pattern.test(e.message));
};

describe('parseIdx', () => {
  it('reads dims and data', () => {
    const { dims, data } = parseIdx(idxBytes([2, 3, 4]));
    assert.deepEqual(dims, [2, 3, 4]);
    assert.deepEqual([...data], Array.from({ length: 24 }, (_, i) => i));
  });

  it('rejects a wrong magic number, naming the source', () => {
    const gz = idxBytes([3]);
    gz.set([0x1f, 0x8b]);
    rejects(() => parseIdx(gz, 'labels.gz'), /^labels\.gz: bad magic number 0x1f8b0801/);
  });

  it('rejects dtypes other than unsigned bytes', () => {
    const floats = idxBytes([3]);
    floats[2] = 0x0d;
    rejects(() => parseIdx(floats), /unsupported dtype 0xd/);
  });

  it('rejects truncated headers and data, and trailing bytes', () => {
    rejects(() => parseIdx(Uint8Array.of(0, 0)), /truncated/);
    rejects(() => parseIdx(idxBytes([10, 28, 28]).subarray(0, 10)), /truncated: 10 bytes, the header of a rank-3 file needs 16/);
    rejects(() => parseIdx(idxBytes([10, 28, 28], 7000)), /truncated: dims \[10, 28, 28\] need 7840 data bytes, the file has 7000/);
    rejects(() => parseIdx(idxBytes([5], 6)), /trailing bytes/);
  });
});

describe('parseIdxImageSet', () => {
  it('pairs images with labels', () => {
    const set = parseIdxImageSet(idxBytes([5, 2, 3]), idxBytes([5]));
    assert.deepEqual([set.n, set.height, set.width, set.pixels.length, set.labels.length], [5, 2, 3, 30, 5]);
  });

  it('rejects a count mismatch and wrong ranks', () => {
    rejects(() => parseIdxImageSet(idxBytes([5, 2, 3]), idxBytes([4]), 'train'), /^train: count mismatch: 5 images but 4 labels/);
    rejects(() => parseIdxImageSet(idxBytes([5, 6]), idxBytes([5])), /images must have rank 3/);
    rejects(() => parseIdxImageSet(idxBytes([5, 2, 3]), idxBytes([5, 1])), /labels must have rank 1/);
  });
});
