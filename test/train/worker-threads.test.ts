// The Node adapter that gives jax-js's wasm backend a worker pool (src/train/runtime/worker-threads.node.ts). Each
// case runs test/fixtures/train/worker-probe.ts in a child process, because the adapter reads TESSERA_THREADS once,
// at import, before jax-js builds its backend.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';

interface Probe { installed: boolean; started: number; runtimeThreads: number; maxErr: number; digest: string }
interface Outcome { code: number; probe?: Probe; stderr: string }

const probeFile = fileURLToPath(new URL('../fixtures/train/worker-probe.ts', import.meta.url));

function probe(threads: string | undefined): Promise<Outcome> {
  const env = { ...process.env };
  if (threads === undefined) delete env['TESSERA_THREADS'];
  else env['TESSERA_THREADS'] = threads;
  return new Promise((resolve) => {
    execFile(process.execPath, ['--import', 'tsx', probeFile], { env, timeout: 30_000 }, (err, stdout, stderr) => {
      const code = err === null ? 0 : typeof err.code === 'number' ? err.code : 1;
      resolve({ code, stderr, probe: code === 0 ? (JSON.parse(stdout.trim().split('\n').at(-1)!) as Probe) : undefined });
    });
  });
}

// Started together: each child spends most of its time loading, not computing.
const [unset, three, zero, bad] = [probe(undefined), probe('3'), probe('0'), probe('two')];

const ok = async (outcome: Promise<Outcome>): Promise<Probe> => {
  const { code, probe: p, stderr } = await outcome;
  assert.equal(code, 0, stderr);
  return p!;
};

describe('worker-threads adapter', () => {
  it('installs a global Worker when TESSERA_THREADS is unset, and jax-js runs a jitted matmul on it correctly', async () => {
    const p = await ok(unset);
    assert.equal(p.installed, true);
    assert.ok(p.started >= 1, 'jax-js started no workers');
    assert.equal(p.runtimeThreads, availableParallelism());
    assert.equal(p.started, p.runtimeThreads);
    // float32 sums of 96 products of size <= 1 against float64 JS: rounding only.
    assert.ok(p.maxErr < 1e-4, `max error ${p.maxErr}`);
  });

  it('sizes the pool from TESSERA_THREADS', async () => {
    const p = await ok(three);
    assert.deepEqual([p.installed, p.started, p.runtimeThreads], [true, 3, 3]);
  });

  it('stays single-threaded with TESSERA_THREADS=0, with bit-identical results', async () => {
    const p = await ok(zero);
    assert.deepEqual([p.installed, p.started, p.runtimeThreads], [false, 0, 1]);
    // Each output is computed whole by one thread, so splitting the work must not change a bit.
    assert.equal(p.digest, (await ok(unset)).digest);
    assert.equal(p.digest, (await ok(three)).digest);
  });

  it('rejects a TESSERA_THREADS that is not a whole number', async () => {
    const { code, stderr } = await bad;
    assert.notEqual(code, 0);
    assert.match(stderr, /TESSERA_THREADS must be a whole number, got "two"/);
  });
});
