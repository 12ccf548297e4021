// The browser device: the same lease loop as `tessera join` (src/device/lease-loop.ts), given browser adapters:
// IndexedDB for the identity and the weights cache, fetch for the network (client.ts), the browser's own profile,
// the user's file or a public shard as data, and a pause gate the page closes while the tab is hidden.
import { GptSpec } from '../../core/model-spec.ts';
import { Rng } from '../../core/rng.ts';
import { CharVocab } from '../../data/char-vocab.ts';
import { CoordinatorClient, type DeviceRunView } from '../../device/client.ts';
import { openDeviceDb } from '../../device/idb.web.ts';
import { IndexedDbIdentityStore } from '../../device/identity.web.ts';
import { runLeaseLoop, type DeviceEvent, type LoopSummary } from '../../device/lease-loop.ts';
import type { PauseGate } from '../../device/pause-gate.ts';
import { probeProfile, type BenchmarkResult } from '../../device/profile.ts';
import { browserFacts, browserMemoryMiB, browserPlatform } from '../../device/profile.web.ts';
import { charTextTask, encodeKnownChars } from '../../device/tasks/char-text.ts';
import type { WeightsCache } from '../../device/weights-cache.ts';
import { IndexedDbWeightsCache } from '../../device/weights-cache.web.ts';
import { createModel } from '../../train/models/registry.ts';
import { initRuntime, selectBackend, type Backend, type BackendPreference } from '../../train/runtime/jax.ts';

export interface JoinRequest {
  coordinator: string;
  runId: string;
  joinToken: string;
  /** The user's own text; without it the device trains on a public shard the coordinator serves. */
  file?: File;
  backend: BackendPreference;
}

export type DataSource =
  | { kind: 'file'; name: string; chars: number; dropped: number }
  | { kind: 'public'; shard: number; label: string; chars: number };

export interface DeviceObserver {
  status(text: string): void;
  run(run: DeviceRunView): void;
  data(source: DataSource): void;
  profile(info: { backend: Backend; examplesPerSecond: number; benchmark: BenchmarkResult; memoryMiB: number; platform: string }): void;
  /** The weights of a lease came from IndexedDB (hit) or the network (miss). */
  weights(hash: string, cached: boolean): void;
  event(e: DeviceEvent): void;
}

/** Profiles this tab and works leases of the run until the signal aborts. */
export async function runBrowserDevice(req: JoinRequest, pause: PauseGate, ui: DeviceObserver, signal: AbortSignal): Promise<LoopSummary> {
  // Weights deltas: a tab that trained on version u asks for v as a delta from u (a chain of compressed steps in runs
  // with a downlink codec), rebuilt and checked against v's hash by the shared client; costs one copy of the weights.
  const client = new CoordinatorClient(req.coordinator, { weightDeltas: true });
  ui.status('Reading the run…');
  const run = await client.getRun(req.runId, signal);
  ui.run(run);
  const spec = GptSpec.safeParse(run.model);
  if (!spec.success) throw new Error(`run ${run.runId} trains ${run.task} (a ${run.model.kind} model); browser devices join text runs (char GPT) only`);
  const info = await client.getPublicText(run.runId, signal);
  const vocab = CharVocab.fromJSON(info.vocab);

  let ids: Int32Array;
  let shard: number | undefined;
  if (req.file !== undefined) {
    ui.status(`Reading ${req.file.name} (it stays in this tab)…`);
    const encoded = encodeKnownChars(vocab, await req.file.text());
    ids = encoded.ids;
    ui.data({ kind: 'file', name: req.file.name, chars: ids.length, dropped: encoded.dropped });
  } else {
    shard = pickShard(run.runId, info.shards.length);
    const meta = info.shards[shard]!;
    ui.status(`Downloading the public text of ${meta.label}…`);
    ids = encodeKnownChars(vocab, await client.getPublicShard(run.runId, shard, signal)).ids;
    ui.data({ kind: 'public', shard, label: meta.label, chars: ids.length });
  }
  const task = charTextTask({ name: `${run.task} (${req.file === undefined ? 'public shard' : 'local file'})`, model: spec.data, vocab, ids });

  const backend = await selectBackend(req.backend);
  await initRuntime();
  ui.status(`Measuring how fast this tab trains (${backend})…`);
  const facts = browserFacts();
  const platform = browserPlatform(facts, backend);
  const memoryMiB = browserMemoryMiB(facts);
  const { profile, benchmark } = await probeProfile(createModel(spec.data), task.trainBatches(16, new Rng(1)), { memoryMiB, platform, signal });
  ui.profile({ backend, examplesPerSecond: profile.examplesPerSecond, benchmark, memoryMiB, platform });

  const db = await openDeviceDb();
  try {
    ui.status('Joining the run…');
    return await runLeaseLoop({
      client, runId: run.runId, joinToken: req.joinToken, model: spec.data, task, profile,
      ...(shard === undefined ? {} : { shard }),
      identity: new IndexedDbIdentityStore(db, req.coordinator, run.runId),
      cache: observed(new IndexedDbWeightsCache(db), ui),
      pause, signal, onEvent: (e) => ui.event(e),
    });
  } finally {
    db.close();
  }
}

/** The cache, reporting whether each lease's base came from it. */
function observed(cache: WeightsCache, ui: DeviceObserver): WeightsCache {
  return {
    async get(hash) {
      const bytes = await cache.get(hash);
      if (bytes !== undefined) ui.weights(hash, true);
      return bytes;
    },
    async put(hash, bytes) {
      ui.weights(hash, false);
      await cache.put(hash, bytes);
    },
  };
}

/** A public shard for this browser, kept across reloads so a returning tab trains on the same role. */
function pickShard(runId: string, shards: number): number {
  const key = `tessera.shard.${runId}`;
  const saved = Number(localStorage.getItem(key));
  if (Number.isInteger(saved) && saved >= 0 && saved < shards && localStorage.getItem(key) !== null) return saved;
  const shard = Math.floor(Math.random() * shards);
  localStorage.setItem(key, String(shard));
  return shard;
}
