import { test } from 'node:test';
import assert from 'node:assert/strict';
import { flatten, layoutOf, tensor, unflatten, ShapeError } from '../../src/core/tensor.ts';

test('flatten and unflatten round-trip in sorted-name layout', () => {
  const rec = new Map([
    ['b', tensor([2], [3, 4])],
    ['a', tensor([1, 2], [1, 2])],
  ]);
  const layout = layoutOf([...rec].map(([k, t]) => [k, t.shape] as const));
  assert.deepEqual(layout.slots.map((s) => [s.name, s.offset]), [['a', 0], ['b', 2]]);
  const flat = flatten(rec, layout);
  assert.deepEqual([...flat], [1, 2, 3, 4]);
  assert.deepEqual([...unflatten(flat, layout).get('b')!.data], [3, 4]);
});

test('flatten rejects a wrong shape with a ShapeError naming the tensor', () => {
  const layout = layoutOf([['w', [2, 2]]]);
  assert.throws(() => flatten(new Map([['w', tensor([4])]]), layout), (e: unknown) => e instanceof ShapeError && /w/.test(e.message));
  assert.throws(() => tensor([2, 2], [1, 2, 3]), ShapeError);
});
