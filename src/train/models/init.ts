// Host-side parameter initialisation from the core's seeded Rng, so the same seed gives bit-identical starting
// weights in Node, in a browser, and in the PyTorch reference scripts that read our safetensors.
import { Rng } from '../../core/rng.ts';
import { tensor, type Tensor } from '../../core/tensor.ts';

export type Init = { kind: 'normal'; std: number } | { kind: 'uniform'; bound: number } | { kind: 'const'; value: number };

export function initTensors(
  specs: ReadonlyArray<readonly [string, readonly number[], Init]>,
  seed: number,
): Map<string, Tensor> {
  const out = new Map<string, Tensor>();
  for (const [name, shape, init] of specs) {
    // One stream per tensor, derived from its name, so adding a tensor does not reshuffle the others.
    const rng = new Rng(seed ^ hashName(name));
    const t = tensor(shape);
    const d = t.data;
    if (init.kind === 'normal') for (let i = 0; i < d.length; i++) d[i] = rng.normal() * init.std;
    else if (init.kind === 'uniform') for (let i = 0; i < d.length; i++) d[i] = (2 * rng.next() - 1) * init.bound;
    else d.fill(init.value);
    out.set(name, t);
  }
  return out;
}

function hashName(name: string): number {
  let h = 0x811c9dc5; // FNV-1a
  for (let i = 0; i < name.length; i++) h = Math.imul(h ^ name.charCodeAt(i), 0x01000193);
  return h >>> 0;
}
