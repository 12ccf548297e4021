// `tessera serve` as a child process on a data directory, for tests that kill -9 the coordinator and restart it on
// the same files. Resolves once it prints the URL it listens on; `exited` resolves with the signal that ended it.
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';

export interface SpawnedCoordinator {
  child: ChildProcess;
  url: string;
  exited: Promise<NodeJS.Signals | null>;
}

export function spawnCoordinator(dataDir: string, options: { adminToken: string; fault?: string; args?: string[] }): Promise<SpawnedCoordinator> {
  const child = spawn(process.execPath, [
    '--import', 'tsx', 'src/cli/main.ts', 'serve', '--data-dir', dataDir, '--port', '0', '--no-eval', ...(options.args ?? []),
  ], {
    env: { ...process.env, TESSERA_ADMIN_TOKEN: options.adminToken, TESSERA_THREADS: '0', TESSERA_FAULT: options.fault ?? '' },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const exited = new Promise<NodeJS.Signals | null>((r) => child.once('exit', (_code, signal) => r(signal)));
  return new Promise((resolve, reject) => {
    createInterface({ input: child.stdout! }).on('line', (line) => {
      const m = line.match(/listening on (http:\/\/\S+)/);
      if (m) resolve({ child, url: m[1]!, exited });
    });
    child.once('exit', (code) => reject(new Error(`coordinator exited with ${code} before listening`)));
  });
}
