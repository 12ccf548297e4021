// AdamW and SGD against torch.optim trajectories (scripts/fixtures/train_optimizers.py): same start, same gradients,
// same per-step learning rates, weight decay only on the `decayed` tensor. Runs the update under jit in float32, as
// the trainer does, and compares each step's total change p_t - p_0 so that a small error is not hidden by |p|.
import '../../src/train/runtime/worker-threads.node.ts';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { createOptimizer, OptimizerConfig } from '../../src/train/optim/optimizers.ts';
import { dispose, initRuntime, jit, np, type Params } from '../../src/train/runtime/jax.ts';
import { read, relErr } from './helpers.ts';

type Flat = Record<string, number[]>;
interface Fixture {
  params: Record<string, { shape: number[]; data: number[] }>;
  decayed: string[];
  lrs: number[];
  grads: Flat[];
  cases: Array<{ name: string; config: unknown; expected: Flat[] }>;
}
const fixture = JSON.parse(readFileSync(new URL('../fixtures/train/optimizers.json', import.meta.url), 'utf8')) as Fixture;

await initRuntime();
const shapes = Object.fromEntries(Object.entries(fixture.params).map(([n, t]) => [n, t.shape]));
const onDevice = (flat: Flat): Params =>
  Object.fromEntries(Object.entries(flat).map(([n, d]) => [n, np.array(Float32Array.from(d), { shape: shapes[n]! })]));
const start: Flat = Object.fromEntries(Object.entries(fixture.params).map(([n, t]) => [n, t.data]));

describe('optimizers match torch.optim', () => {
  for (const { name, config, expected } of fixture.cases) {
    it(name, async () => {
      const optimizer = createOptimizer(OptimizerConfig.parse(config), new Set(fixture.decayed));
      const update = jit(optimizer.update);
      let params = onDevice(start);
      let state = optimizer.init(params);
      for (let t = 1; t <= expected.length; t++) {
        const scalars = np.array(optimizer.scalars(t, fixture.lrs[t - 1]!));
        [params, state] = update(params, onDevice(fixture.grads[t - 1]!), state, scalars);
        for (const [tensor, want] of Object.entries(expected[t - 1]!)) {
          const got = await read(params[tensor]!);
          const moved = got.map((v, i) => v - start[tensor]![i]!);
          const wantMoved = want.map((v, i) => v - start[tensor]![i]!);
          // float32 parameters of size ~1 carry ~1e-7 rounding; each step moves them by ~1e-2 (observed error < 1e-6).
          const err = relErr(moved, wantMoved);
          assert.ok(err < 1e-5, `step ${t}, ${tensor}: change differs from torch by ${err.toExponential(2)}`);
        }
      }
      dispose(params);
      dispose(state);
      update.dispose();
    });
  }

  it('keeps state only where the algorithm has some (AdamW: m and v; SGD: a buffer only with momentum)', () => {
    const params = onDevice(start);
    const keys = (config: unknown) => Object.keys(createOptimizer(OptimizerConfig.parse(config), new Set()).init(params)).sort();
    assert.deepEqual(keys({ kind: 'adamw', lr: 1 }), ['m:b', 'm:w', 'v:b', 'v:w']);
    assert.deepEqual(keys({ kind: 'sgd', lr: 1, momentum: 0.9 }), ['b:b', 'b:w']);
    assert.deepEqual(keys({ kind: 'sgd', lr: 1 }), []);
    dispose(params);
  });
});
