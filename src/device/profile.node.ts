// The Node side of a device profile: how much memory this machine has and what it is, for `tessera join`.
import { arch, platform, totalmem } from 'node:os';

/**
 * A default training budget: half of physical memory, leaving the rest to the OS and everything else running.
 * `--memory` overrides it (and declares a smaller device in demos).
 */
export function defaultMemoryMiB(): number {
  return Math.max(1, Math.floor(totalmem() / 2 / 2 ** 20));
}

export function nodePlatform(): string {
  return `node ${process.versions.node} ${platform()} ${arch()}`;
}
