// Where the real data lives on a Node machine. Resolved from this file's location, not the working directory, so
// tests, the CLI and benchmarks find the same files wherever they are started from.
import { readFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DataNotFoundError } from './errors.ts';

const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const DEFAULT_FASHION_MNIST = '/usr/share/datasets/fashion-mnist';

/** The shared data folder: $TESSERA_SHARED_DATA, else `shared/data` beside the checkout (as CI lays it out). */
export function sharedDataDir(): string {
  return process.env['TESSERA_SHARED_DATA'] ?? resolve(REPO_ROOT, '../shared/data');
}

/** The Fashion-MNIST folder: $TESSERA_FASHION_MNIST, else where Debian's dataset-fashion-mnist installs it. */
export function fashionMnistDir(): string {
  return process.env['TESSERA_FASHION_MNIST'] ?? DEFAULT_FASHION_MNIST;
}

/** Reads a data file whole; a missing file becomes a DataNotFoundError that says how to provide it (`hint`). */
export async function readDataFile(path: string, hint: string): Promise<Buffer> {
  try {
    return await readFile(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new DataNotFoundError(`file not found. ${hint}`, path);
    throw err;
  }
}

/** The hint for files under the shared data folder. */
export function sharedDataHint(): string {
  return (
    `Tessera expects the shared data folder at ${sharedDataDir()} (shared/data beside the repository checkout, ` +
    'as CI provides it); set TESSERA_SHARED_DATA to use another folder.'
  );
}
