import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Rng } from '../../src/core/rng.ts';
import { DataError } from '../../src/data/errors.ts';
import { dirichletLabelSkew, iid, summarizePartition } from '../../src/data/partition.ts';

// 10 classes of 600 examples, interleaved like a real dataset.
const labels = Uint8Array.from({ length: 6000 }, (_, i) => i % 10);

function assertCoversOnce(parts: Int32Array[], n: number): void {
  const all = parts.flatMap((p) => [...p]).sort((a, b) => a - b);
  assert.deepEqual(all, Array.from({ length: n }, (_, i) => i));
  for (const p of parts) for (let i = 1; i < p.length; i++) assert.ok(p[i - 1]! < p[i]!, 'ascending');
}

describe('iid', () => {
  it('deals every index once into near-equal parts, reproducibly', () => {
    const parts = iid(103, 10, new Rng(1));
    assertCoversOnce(parts, 103);
    assert.deepEqual(parts.map((p) => p.length).sort(), [10, 10, 10, 10, 10, 10, 10, 11, 11, 11]);
    assert.deepEqual(iid(103, 10, new Rng(1)), parts);
    assert.ok(summarizePartition(iid(6000, 10, new Rng(2)), labels, 10).labelSkew < 0.1);
  });
});

describe('dirichletLabelSkew', () => {
  it('assigns every index exactly once, the same way for the same seed', () => {
    const parts = dirichletLabelSkew(labels, 10, 20, 0.5, new Rng(7));
    assertCoversOnce(parts, labels.length);
    assert.deepEqual(dirichletLabelSkew(labels, 10, 20, 0.5, new Rng(7)), parts);
    assert.notDeepEqual(dirichletLabelSkew(labels, 10, 20, 0.5, new Rng(8)), parts);
  });

  it('is skewed for small alpha and near uniform for large alpha', () => {
    const skewed = summarizePartition(dirichletLabelSkew(labels, 10, 10, 0.05, new Rng(1)), labels, 10);
    const uniform = summarizePartition(dirichletLabelSkew(labels, 10, 10, 1000, new Rng(1)), labels, 10);
    assert.ok(skewed.labelSkew > 0.6, `alpha 0.05: skew ${skewed.labelSkew}`);
    assert.ok(uniform.labelSkew < 0.05, `alpha 1000: skew ${uniform.labelSkew}`);
    // Near uniform: each client holds about 60 of each class.
    for (const h of uniform.histograms) for (const count of h) assert.ok(Math.abs(count - 60) < 20, `${count}`);
  });

  it('survives alphas whose gamma draws underflow', () => {
    assertCoversOnce(dirichletLabelSkew(labels, 10, 3, 0.001, new Rng(4)), labels.length);
  });

  it('redraws until each client has minSize examples, and says when it cannot', () => {
    const parts = dirichletLabelSkew(labels, 10, 20, 0.1, new Rng(3), { minSize: 20 });
    assert.ok(parts.every((p) => p.length >= 20));
    assert.throws(() => dirichletLabelSkew(labels, 10, 20, 0.1, new Rng(3), { minSize: 1000, maxDraws: 5 }), /could not give each of 20 clients/);
  });

  it('rejects bad labels and parameters', () => {
    assert.throws(() => dirichletLabelSkew(Uint8Array.of(0, 3), 3, 2, 1, new Rng(0)), /label at index 1 is 3/);
    assert.throws(() => dirichletLabelSkew(labels, 10, 0, 1, new Rng(0)), DataError);
    assert.throws(() => dirichletLabelSkew(labels, 10, 2, 0, new Rng(0)), DataError);
  });
});

describe('summarizePartition', () => {
  it('counts sizes and label histograms per client', () => {
    const summary = summarizePartition([Int32Array.of(0, 1, 2), Int32Array.of(3)], Uint8Array.of(0, 0, 1, 1), 2);
    assert.deepEqual(summary.sizes, [3, 1]);
    assert.deepEqual(summary.histograms, [[2, 1], [0, 1]]);
    // Global mix is 50/50; client 0 is off by 1/6, client 1 by 1/2: (3/4)(1/6) + (1/4)(1/2) = 0.25.
    assert.ok(Math.abs(summary.labelSkew - 0.25) < 1e-12);
  });
});
