// A device identity in a file only its owner can read (0600, in a 0700 directory): the token is a credential. One
// file per (coordinator, run), so one state directory serves every run a machine joins.
import { createHash } from 'node:crypto';
import { chmod, mkdir, readFile, rename, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import type { DeviceCredentials } from './client.ts';
import type { IdentityStore } from './identity.ts';

const IdentityFile = z.object({ coordinator: z.string(), runId: z.string(), deviceId: z.string().min(1), deviceToken: z.string().min(1) });

export class FileIdentityStore implements IdentityStore {
  readonly path: string;

  constructor(private readonly stateDir: string, private readonly coordinator: string, private readonly runId: string) {
    const key = createHash('sha256').update(`${new URL(coordinator).origin}\n${runId}`).digest('hex').slice(0, 16);
    this.path = join(stateDir, `device-${key}.json`);
  }

  async load(): Promise<DeviceCredentials | undefined> {
    let text: string;
    try {
      text = await readFile(this.path, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw e;
    }
    // A damaged file is as good as none: the device registers again rather than refusing to start.
    let parsed;
    try {
      parsed = IdentityFile.safeParse(JSON.parse(text));
    } catch {
      return undefined;
    }
    if (!parsed.success || parsed.data.runId !== this.runId) return undefined;
    return { deviceId: parsed.data.deviceId, deviceToken: parsed.data.deviceToken };
  }

  async save(credentials: DeviceCredentials): Promise<void> {
    await mkdir(this.stateDir, { recursive: true, mode: 0o700 });
    const body = { coordinator: new URL(this.coordinator).origin, runId: this.runId, ...credentials };
    const tmp = `${this.path}.${process.pid}.tmp`;
    await writeFile(tmp, JSON.stringify(body, null, 2) + '\n', { mode: 0o600 });
    await chmod(tmp, 0o600); // the mode option is filtered by the umask and ignored for an existing file
    await rename(tmp, this.path);
  }

  async clear(): Promise<void> {
    await unlink(this.path).catch((e: NodeJS.ErrnoException) => {
      if (e.code !== 'ENOENT') throw e;
    });
  }
}
