// Run config files: the shipped examples are valid, and a bad file is refused with every problem named by its path.
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { readRunConfig } from '../../src/cli/commands/runs.ts';

describe('run config files', () => {
  it('accepts every example in examples/', () => {
    // sim-*.json are simulator configs (src/sim), checked by the simulator's own tests.
    const files = readdirSync('examples').filter((f) => f.endsWith('.json') && !f.startsWith('sim-'));
    assert.ok(files.length >= 2, 'examples exist');
    for (const f of files) assert.ok(readRunConfig(join('examples', f)).name.length > 0, `${f} is valid`);
  });

  it('fills recipe defaults field by field', () => {
    const dir = mkdtempSync(join(tmpdir(), 'tessera-cfg-'));
    writeFileSync(join(dir, 'partial.json'), JSON.stringify({ name: 'p', task: 'shakespeare', recipe: { localSteps: 50 } }));
    const cfg = readRunConfig(join(dir, 'partial.json'));
    assert.equal(cfg.recipe.localSteps, 50, 'given field kept');
    assert.equal(cfg.recipe.optimizer, 'adamw', 'missing field defaulted');
    assert.equal(cfg.aggregation.mode, 'async', 'FedBuff is the default aggregation');
  });

  it('names every problem of a bad file', () => {
    const dir = mkdtempSync(join(tmpdir(), 'tessera-cfg-'));
    writeFileSync(join(dir, 'bad.json'), JSON.stringify({ name: 'x', task: 'mnist', recipe: { lr: -1 }, extra: true }));
    assert.throws(() => readRunConfig(join(dir, 'bad.json')), (e: unknown) =>
      e instanceof Error && /task/.test(e.message) && /recipe\.lr/.test(e.message) && /extra/.test(e.message), 'task, recipe.lr and the unknown key are named');
    writeFileSync(join(dir, 'broken.json'), '{"name": ');
    assert.throws(() => readRunConfig(join(dir, 'broken.json')), /not readable JSON/, 'malformed JSON');
  });
});
