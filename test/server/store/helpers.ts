// Record builders for store tests: valid defaults, overridable per field.
import type {
  DeviceRecord,
  LeaseRecord,
  NewUpdate,
  RunRecord,
  VersionRecord,
} from '../../../src/server/store/store.ts';

export const HASH_A = 'a'.repeat(64);
export const HASH_B = 'b'.repeat(64);

export const run = (id = 'r1', over: Partial<RunRecord> = {}): RunRecord => ({
  id,
  name: `run ${id}`,
  config: JSON.stringify({ model: 'mlp', lr: 0.1 }),
  joinTokenHash: 'f'.repeat(64),
  status: 'active',
  head: 0,
  createdAt: 1000,
  ...over,
});

export const version = (runId: string, v: number, over: Partial<VersionRecord> = {}): VersionRecord => ({
  runId,
  version: v,
  parent: v === 0 ? null : v - 1,
  paramsHash: HASH_A,
  stateHash: null,
  createdAt: 1000 + v,
  updates: 0,
  metrics: {},
  ...over,
});

export const device = (runId: string, id: string, over: Partial<DeviceRecord> = {}): DeviceRecord => ({
  id,
  runId,
  tokenHash: 'e'.repeat(64),
  profile: JSON.stringify({ kind: 'node', memoryMb: 4096 }),
  registeredAt: 2000,
  lastSeen: 2000,
  ...over,
});

export const lease = (runId: string, id: string, deviceId: string, over: Partial<LeaseRecord> = {}): LeaseRecord => ({
  id,
  runId,
  deviceId,
  baseVersion: 0,
  body: JSON.stringify({ plan: { kind: 'full' }, steps: 10 }),
  issuedAt: 3000,
  deadline: 5000,
  status: 'open',
  ...over,
});

export const update = (
  runId: string,
  leaseId: string,
  deviceId: string,
  over: Partial<NewUpdate> = {},
): NewUpdate => ({
  runId,
  leaseId,
  deviceId,
  baseVersion: 0,
  blobHash: HASH_B,
  numExamples: 32,
  localSteps: 10,
  metrics: JSON.stringify({ loss: 0.5 }),
  bytes: 1234,
  acceptedAt: 4000,
  ...over,
});
