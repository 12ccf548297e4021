// The weights cache in a directory, one `<sha256>.safetensors` file per version a device trained from, so a restarted
// device starts its next lease without downloading the base again. Writes go to a temporary name and are renamed into
// place, so a crash leaves either the whole file or none; reads are verified, so a file damaged later is refetched.
import { mkdir, readdir, readFile, rename, stat, unlink, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { sha256Hex, type WeightsCache } from './weights-cache.ts';

const HASH = /^[0-9a-f]{64}$/;
const SUFFIX = '.safetensors';

export class DiskWeightsCache implements WeightsCache {
  /** Keeps the `maxEntries` most recently used files: a continual run publishes versions without end. */
  constructor(readonly dir: string, private readonly maxEntries = 4) {}

  async get(hash: string): Promise<Uint8Array | undefined> {
    if (!HASH.test(hash)) return undefined;
    const path = this.path(hash);
    let bytes: Uint8Array;
    try {
      bytes = new Uint8Array(await readFile(path));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw e;
    }
    if ((await sha256Hex(bytes)) !== hash) {
      await unlink(path).catch(() => undefined);
      return undefined;
    }
    const now = new Date();
    await utimes(path, now, now).catch(() => undefined); // mtime orders eviction
    return bytes;
  }

  async put(hash: string, bytes: Uint8Array): Promise<void> {
    if (!HASH.test(hash)) throw new RangeError(`weights cache keys are sha256 hex, got ${JSON.stringify(hash)}`);
    await mkdir(this.dir, { recursive: true });
    const tmp = join(this.dir, `.${hash}.${process.pid}.${Date.now()}.tmp`);
    await writeFile(tmp, bytes);
    await rename(tmp, this.path(hash));
    await this.evict();
  }

  private path(hash: string): string {
    return join(this.dir, hash + SUFFIX);
  }

  private async evict(): Promise<void> {
    const names = (await readdir(this.dir)).filter((n) => n.endsWith(SUFFIX) && HASH.test(n.slice(0, -SUFFIX.length)));
    if (names.length <= this.maxEntries) return;
    const aged = await Promise.all(names.map(async (n) => {
      const s = await stat(join(this.dir, n)).catch(() => undefined);
      return { n, t: s?.mtimeMs ?? 0 };
    }));
    aged.sort((a, b) => b.t - a.t);
    for (const { n } of aged.slice(this.maxEntries)) await unlink(join(this.dir, n)).catch(() => undefined);
  }
}
