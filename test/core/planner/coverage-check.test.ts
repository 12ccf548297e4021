// The unit-level coverage check against the ground truth: the union of the plans' exact coordinate coverages. And the
// rolling schedule's cycle: after rollingCycle leases the windows repeat, and within one cycle the check passes.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { coverageMask } from '../../../src/core/coverage.ts';
import type { ModelSpec } from '../../../src/core/model-spec.ts';
import type { Plan } from '../../../src/core/protocol/schemas.ts';
import { Rng } from '../../../src/core/rng.ts';
import { checkCoverage, coverageReport } from '../../../src/core/planner/coverage-check.ts';
import { PlannerError } from '../../../src/core/planner/errors.ts';
import { rollingCycle, rollingWindow } from '../../../src/core/planner/rolling.ts';
import { parameterLayout } from '../../../src/core/submodel/shapes.ts';
import { planCoverage } from '../../../src/core/submodel/submodel.ts';

const specs: readonly ModelSpec[] = [
  { kind: 'gpt', vocabSize: 9, context: 4, width: 12, heads: 6, layers: 3, mlpRatio: 2 },
  { kind: 'mlp', inputs: 5, hidden: [6, 4, 9], classes: 3 },
  { kind: 'cnn', height: 5, width: 4, channels: 2, conv: [{ out: 4, kernel: 3, stride: 1 }, { out: 6, kernel: 3, stride: 2 }], hidden: [5], classes: 3 },
];

function randomPlan(spec: ModelSpec, rng: Rng): Plan {
  const r = rng.next();
  if (spec.kind === 'gpt' && r < 0.2) return { kind: 'depth', start: rng.int(10), count: 1 + rng.int(2) };
  if (r < 0.23) return { kind: 'full' };
  const ratio = [0.5, 0.25, 0.34, 0.6][rng.int(4)]!;
  return rng.next() < 0.5 ? { kind: 'width', ratio, offset: rng.int(20) } : { kind: 'width', ratio, offset: rng.int(20), shift: rng.int(7) };
}

/** Uncovered coordinates per tensor from the union of exact coverages. */
function reference(spec: ModelSpec, plans: readonly Plan[]): Map<string, number> {
  const layout = parameterLayout(spec);
  const union = new Uint8Array(layout.size);
  for (const p of plans) coverageMask(planCoverage(spec, p)).forEach((v, i) => (union[i]! |= v));
  const out = new Map<string, number>();
  for (const slot of layout.slots) {
    let missing = 0;
    for (let i = slot.offset; i < slot.offset + slot.size; i++) if (union[i] === 0) missing++;
    if (missing > 0) out.set(slot.name, missing);
  }
  return out;
}

describe('coverageReport', () => {
  for (const spec of specs) {
    it(`matches the union of exact coverages on random plan sets (${spec.kind})`, () => {
      const rng = new Rng(spec.kind.length);
      let sawGap = false;
      let sawFull = false;
      for (let trial = 0; trial < 60; trial++) {
        const plans = Array.from({ length: 1 + rng.int(5) }, () => randomPlan(spec, rng));
        const report = coverageReport(spec, plans);
        const expected = reference(spec, plans);
        const got = new Map(report.gaps.map((g) => [g.tensor, g.uncovered]));
        assert.deepEqual(got, expected, `uncovered coordinates per tensor for ${JSON.stringify(plans)}`);
        assert.equal(report.uncovered, [...expected.values()].reduce((a, b) => a + b, 0), 'total uncovered');
        if (report.uncovered > 0) sawGap = true;
        else sawFull = true;
      }
      assert.ok(sawGap && sawFull, `the random plan sets must include both gaps and complete coverage (${sawGap}, ${sawFull})`);
    });
  }

  it('no plans at all leave everything uncovered', () => {
    const spec = specs[1]!;
    const report = coverageReport(spec, []);
    assert.equal(report.uncovered, report.total, 'nothing is trained');
    assert.throws(() => checkCoverage(spec, []), (e: unknown) => e instanceof PlannerError && e.code === 'coverage-gap', 'refused');
  });
});

describe('rolling schedule', () => {
  for (const spec of specs) {
    for (const [ratio, stride] of [[0.5, 1], [0.25, 1], [0.5, 2], [0.34, 1]] as const) {
      it(`${spec.kind} at width ${ratio}, stride ${stride}: repeats after rollingCycle leases, which cover everything`, () => {
        const cycle = rollingCycle(spec, ratio, stride);
        const windows = Array.from({ length: 2 * cycle }, (_, c) => rollingWindow(spec, ratio, c, stride));
        for (let c = 0; c < cycle; c++) assert.deepEqual(windows[c + cycle], windows[c], `lease ${c + cycle} repeats lease ${c}`);
        const keys = new Set(windows.slice(0, cycle).map((w) => `${w.offset},${w.shift}`));
        assert.equal(keys.size, cycle, 'no window repeats within a cycle');
        checkCoverage(spec, windows.slice(0, cycle).map((w): Plan => ({ kind: 'width', ratio, offset: w.offset, shift: w.shift })));
      });
    }
  }
});
