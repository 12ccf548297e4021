// Will every parameter ever be trained? Given the plans a population will receive, finds the coordinates no plan
// covers. Computed on units, not coordinates, so it costs the size of the hidden dimensions rather than of the model:
// under a width plan, whether a coordinate is covered depends only on the units it belongs to along its cut axes (at
// most two dimensions per tensor), so a tensor is covered exactly where the union of the plans' windows covers its
// unit pairs. test/core/planner/coverage-check.test.ts checks this against the union of the plans' exact coverages.
import type { ModelSpec } from '../model-spec.ts';
import type { Plan } from '../protocol/schemas.ts';
import { numel } from '../tensor.ts';
import { keptBlocks } from '../submodel/depth.ts';
import { keptWindows, widthStructure } from '../submodel/width.ts';
import { PlannerError } from './errors.ts';

export interface TensorGap {
  readonly tensor: string;
  /** Coordinates of the tensor no plan covers. */
  readonly uncovered: number;
  readonly size: number;
}

export interface CoverageReport {
  /** Coordinates of the model. */
  readonly total: number;
  /** Coordinates no plan covers. */
  readonly uncovered: number;
  /** Tensors with uncovered coordinates, in layout order. */
  readonly gaps: readonly TensorGap[];
}

export function coverageReport(spec: ModelSpec, plans: readonly Plan[]): CoverageReport {
  const structure = widthStructure(spec);
  const full = plans.some((p) => p.kind === 'full');
  const depthPlans = plans.filter((p) => p.kind === 'depth');
  const blocks = new Set<number>();
  if (spec.kind === 'gpt') for (const p of depthPlans) for (const b of keptBlocks(spec.layers, p)) blocks.add(b);

  // Unit (or unit-pair) coverage per distinct combination of dimensions a tensor is cut along.
  const cells = new Map<string, { families: number[]; covered: Uint8Array }>();
  const familiesOf = structure.tensors.map((t) => {
    const families = [...new Set(t.axes.flatMap((a) => (a === null ? [] : [a.family])))];
    if (families.length > 2) throw new PlannerError('invalid-config', `${t.name} is cut along ${families.length} dimensions; the check handles two`);
    const key = families.join(',');
    if (!cells.has(key)) {
      const size = families.reduce((n, f) => n * structure.families[f]!.size, 1);
      cells.set(key, { families, covered: new Uint8Array(size) });
    }
    return key;
  });
  const widthPlans = plans.filter((p) => p.kind === 'width');
  for (const p of widthPlans) {
    const kept = keptWindows(structure, p);
    for (const { families, covered } of cells.values()) {
      if (families.length === 0) covered[0] = 1;
      else if (families.length === 1) for (const u of kept[families[0]!]!) covered[u] = 1;
      else {
        const [f, g] = families as [number, number];
        const ng = structure.families[g]!.size;
        for (const u of kept[f]!) for (const v of kept[g]!) covered[u * ng + v] = 1;
      }
    }
  }

  let total = 0;
  let uncovered = 0;
  const gaps: TensorGap[] = [];
  structure.tensors.forEach((t, i) => {
    const size = numel(t.shape);
    total += size;
    if (full) return;
    const block = /^h\.(\d+)\./.exec(t.name);
    if (depthPlans.length > 0 && (block === null || blocks.has(Number(block[1])))) return;
    const { covered } = cells.get(familiesOf[i]!)!;
    let zeros = 0;
    for (const c of covered) if (c === 0) zeros++;
    // Every cell stands for the same number of coordinates: the tensor's size over the number of cells.
    const missing = (size / covered.length) * zeros;
    if (missing > 0) {
      gaps.push({ tensor: t.name, uncovered: missing, size });
      uncovered += missing;
    }
  });
  return { total, uncovered, gaps };
}

/** Throws PlannerError('coverage-gap') naming the untrained tensors unless the plans cover every coordinate. */
export function checkCoverage(spec: ModelSpec, plans: readonly Plan[], context = ''): void {
  const report = coverageReport(spec, plans);
  if (report.uncovered === 0) return;
  const pct = ((100 * report.uncovered) / report.total).toFixed(1);
  const shown = report.gaps.slice(0, 4).map((g) => `${g.tensor} (${g.uncovered} of ${g.size})`).join(', ');
  const more = report.gaps.length > 4 ? ` and ${report.gaps.length - 4} more tensors` : '';
  throw new PlannerError(
    'coverage-gap',
    `${report.uncovered} of ${report.total} parameters (${pct}%) would never be trained${context}: ${shown}${more}. ${hint(plans)}`,
  );
}

function hint(plans: readonly Plan[]): string {
  if (plans.length === 0) return 'No device can train any part of the model.';
  const width = plans.filter((p) => p.kind === 'width');
  if (width.length === plans.length && width.every((p) => p.offset === 0 && (p.shift ?? 0) === 0)) {
    return (
      'Static width slices (HeteroFL) train only the first units of every hidden dimension and no device here can ' +
      'hold the full model: use rolling windows (FedRolex), or add devices that can train the full width.'
    );
  }
  if (plans.some((p) => p.kind === 'depth')) return 'Depth plans skip some blocks for good: roll the first block over all of them.';
  return 'The windows never reach these units together: use a rolling stride no larger than the smallest window.';
}
