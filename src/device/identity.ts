// Who this device is to one run on one coordinator: the id and bearer token registration returned. Kept so a device
// that restarts comes back as itself (its history, its shard, its rate limits) instead of as a stranger.
import type { DeviceCredentials } from './client.ts';

export interface IdentityStore {
  load(): Promise<DeviceCredentials | undefined>;
  save(credentials: DeviceCredentials): Promise<void>;
  /** Forgets the identity (the coordinator no longer knows it). */
  clear(): Promise<void>;
}

/** An identity that lasts as long as the process (tests, in-process simulations). */
export class MemoryIdentityStore implements IdentityStore {
  private creds: DeviceCredentials | undefined;
  async load(): Promise<DeviceCredentials | undefined> {
    return this.creds;
  }
  async save(credentials: DeviceCredentials): Promise<void> {
    this.creds = { ...credentials };
  }
  async clear(): Promise<void> {
    this.creds = undefined;
  }
}
