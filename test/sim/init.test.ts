// task.init: a simulation starts from the weights in a safetensors file (a pretrained base) instead of a random init,
// and a file that does not hold exactly the model's tensors is refused with the problem named.
import '../../src/train/runtime/worker-threads.node.ts';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { encodeSafetensors } from '../../src/core/safetensors.ts';
import { flatten, layoutOf, type Tensor } from '../../src/core/tensor.ts';
import { parseSimConfig } from '../../src/sim/config.ts';
import { fullBackend } from '../../src/sim/full-backend.node.ts';
import { createModel } from '../../src/train/models/registry.ts';

const MODEL = { kind: 'mlp' as const, inputs: 784, hidden: [8], classes: 10 };

describe('simulator task.init', () => {
  const dir = mkdtempSync(join(tmpdir(), 'tessera-sim-init-'));
  const model = createModel(MODEL);
  const weights = new Map([...model.init(7)].map(([n, t]): [string, Tensor] => [n, { shape: t.shape, data: t.data.map((x, i) => x + 0.001 * i) }]));
  const file = (name: string, tensors: Map<string, Tensor>) => {
    const path = join(dir, name);
    writeFileSync(path, encodeSafetensors(tensors, { version: '12' }));
    return path;
  };
  const backend = (init: string) => {
    const config = parseSimConfig({ mode: 'full', task: { name: 'fashion-mlp', model: MODEL, shards: 2, init }, population: { devices: 2, referenceExamplesPerSecond: 10 }, stop: { versions: 1 } });
    return fullBackend({ task: config.task!, recipe: config.recipe, eval: config.eval, seed: 1 });
  };

  it('starts from the file\'s weights', { timeout: 60_000 }, async () => {
    const b = await backend(file('good.safetensors', weights));
    try {
      assert.deepEqual([...b.initialParams()], [...flatten(weights, layoutOf(model.shapes))], 'version 0 is the file');
    } finally {
      b.dispose();
    }
  });

  it('refuses a file with a missing, misshapen or extra tensor, or no file at all', async () => {
    const [first] = [...weights.keys()];
    const missing = new Map(weights);
    missing.delete(first!);
    const misshapen = new Map(weights);
    misshapen.set(first!, { shape: [1, weights.get(first!)!.data.length], data: weights.get(first!)!.data });
    const extra = new Map(weights);
    extra.set('head.extra', { shape: [1], data: new Float32Array(1) });
    for (const [name, tensors, message] of [
      ['missing', missing, `has no tensor ${first}`], ['misshapen', misshapen, `${first} in`], ['extra', extra, 'tensors the model does not have: head.extra'],
    ] as const) {
      await assert.rejects(backend(file(`${name}.safetensors`, tensors)), (e: Error) => e.message.startsWith('task.init:') && e.message.includes(message), name);
    }
    await assert.rejects(backend(join(dir, 'nope.safetensors')), /task\.init: cannot read/);
    writeFileSync(join(dir, 'junk.safetensors'), 'not a safetensors file');
    await assert.rejects(backend(join(dir, 'junk.safetensors')), /task\.init: cannot read/);
  });
});
