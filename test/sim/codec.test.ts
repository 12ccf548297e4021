// Update codecs in the simulator (network.codec, src/sim/codec.ts): uploads are charged the codec's exact size, the
// update folded is the codec's decoding, and top-k keeps an error-feedback residual per device.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { encodedSize } from '../../src/core/codecs/format.ts';
import { CodecSpec } from '../../src/core/codecs/spec.ts';
import { Rng } from '../../src/core/rng.ts';
import { ChangeTracker, compressUpload, type Residuals } from '../../src/sim/codec.ts';
import { parseSimConfig, type SimConfigInput } from '../../src/sim/config.ts';
import { loadPhoneList } from '../../src/sim/population.node.ts';
import { runSimulation } from '../../src/sim/run.node.ts';

const phones = await loadPhoneList();
const PARAMS = 1_000_000;

function config(codec?: SimConfigInput['network']): SimConfigInput {
  return {
    name: 'codec-test', mode: 'fast', seed: 3,
    fast: { dimension: 16, parameters: PARAMS, shards: 20 },
    population: { devices: 500, referenceExamplesPerSecond: 200, timezoneSpreadHours: 12 },
    aggregation: { mode: 'async', strategy: { kind: 'fedbuff', bufferSize: 10 }, concurrency: 50 },
    recipe: { localSteps: 20, batchSize: 16 },
    eval: { everyVersions: 5 },
    stop: { leases: 400 },
    ...(codec === undefined ? {} : { network: codec }),
  };
}

describe('simulator with an update codec', () => {
  it('charges each folded update the codec\'s exact size, and folds the decoded update', async () => {
    const int8 = CodecSpec.parse({ values: 'int8' });
    const [dense, coded] = await Promise.all([
      runSimulation(parseSimConfig(config()), { phones }),
      runSimulation(parseSimConfig(config({ codec: int8 })), { phones }),
    ]);
    const t = coded.result.totals;
    assert.equal(t.bytesUp, t.completed * encodedSize(PARAMS, int8), 'bytes up = updates x encodedSize');
    assert.equal(dense.result.totals.bytesUp, dense.result.totals.completed * 4 * PARAMS, 'dense: 4 bytes per parameter');
    assert.equal(coded.result.model.uploadBytes, encodedSize(PARAMS, int8), 'the model summary names the coded size');
    assert.notDeepEqual(coded.result.versions.map((v) => v.metrics), dense.result.versions.map((v) => v.metrics), 'quantization changes the trajectory');
  });

  it('top-k with error feedback: what a device sent plus its residual is everything it trained', () => {
    const topk = CodecSpec.parse({ values: 'fp32', topK: 0.05 });
    const residuals: Residuals = new Map();
    const r = new Rng(1);
    const total = new Float64Array(200);
    const sent = new Float64Array(200);
    for (let lease = 0; lease < 5; lease++) {
      const delta = Float32Array.from({ length: 200 }, () => r.normal());
      const got = compressUpload(delta, topk, 7, 'full', lease, residuals);
      assert.equal(got.filter((v) => v !== 0).length, 10, `lease ${lease}: 5% sent`);
      for (let i = 0; i < 200; i++) {
        total[i]! += delta[i]!;
        sent[i]! += got[i]!;
      }
    }
    const { residual } = residuals.get(7)!;
    for (let i = 0; i < 200; i++) assert.ok(Math.abs(sent[i]! + residual[i]! - total[i]!) < 1e-4, `entry ${i} telescopes`);
    const other = compressUpload(new Float32Array(200).fill(0.5), topk, 7, 'width:0.5', 9, residuals);
    assert.ok(other.every((v) => v === 0 || v === 0.5), 'a lease with another plan starts without the old residual');
  });

  it('downlink deltas: a device is charged 8 bytes per entry changed since the version it holds, plus headers', () => {
    const t = new ChangeTracker(100);
    const v0 = new Float32Array(100);
    const v1 = v0.slice();
    v1[3] = 1;
    v1[7] = 2;
    const v2 = v1.slice();
    v2[7] = 3;
    v2[50] = -0; // a sign bit is a change of bits
    t.record(v0, v1, 1);
    t.record(v1, v2, 2);
    const overhead = 8 + 20 + 512;
    assert.equal(t.deltaBytes(0), 8 * 3 + overhead, 'from version 0: entries 3, 7, 50');
    assert.equal(t.deltaBytes(1), 8 * 2 + overhead, 'from version 1: entries 7, 50');
    assert.equal(t.deltaBytes(2), overhead, 'from the newest: nothing changed');
  });

  it('a downlink codec: devices train from the compressed versions and download chains of encoded steps', { timeout: 120_000 }, async () => {
    await import('../../src/train/runtime/worker-threads.node.ts');
    const full = (network: SimConfigInput['network']): SimConfigInput => ({
      name: 'downlink-test', mode: 'full', seed: 3,
      task: { name: 'fashion-mlp', model: { kind: 'mlp', inputs: 784, hidden: [32], classes: 10 }, shards: 6, alpha: 0.5 },
      population: { devices: 6, referenceExamplesPerSecond: 3000 },
      aggregation: { mode: 'async', strategy: { kind: 'fedbuff', bufferSize: 2 }, concurrency: 4 },
      recipe: { localSteps: 3, batchSize: 32, lr: 0.005, optimizer: 'adamw' },
      eval: { everyVersions: 2, batches: 3, batchSize: 100 },
      stop: { versions: 8 },
      network,
    });
    const int8 = CodecSpec.parse({ values: 'int8' });
    const [plain, down] = await Promise.all([
      runSimulation(parseSimConfig(full({ weightDeltas: true })), { phones }),
      runSimulation(parseSimConfig(full({ weightDeltas: true, downlinkCodec: int8 })), { phones }),
    ]);
    const n = 784 * 32 + 32 + 32 * 10 + 10;
    const p = plain.result.totals;
    const d = down.result.totals;
    assert.equal(p.leases, d.leases, 'the same leases (the schedule does not depend on the weights)');
    // Dense FedBuff steps change every weight: without the codec each new download is the 4-byte file.
    assert.ok(p.bytesDown > (p.leases - 6) * 4 * n, `plain: full files (${p.bytesDown})`);
    assert.ok(d.bytesDown < 0.6 * p.bytesDown, `int8 chains: ${d.bytesDown} bytes down against ${p.bytesDown}`);
    assert.notDeepEqual(down.result.versions.map((v) => v.metrics), plain.result.versions.map((v) => v.metrics), 'the compressed versions train differently');
    const first = down.result.versions[0]!.metrics['loss']!;
    const last = down.result.versions.at(-1)!.metrics['loss']!;
    assert.ok(last < first - 0.2, `and still learn: ${first.toFixed(3)} -> ${last.toFixed(3)}`);
  });
});
