// Reads Tiny Shakespeare from the shared data folder (Node only; parsing lives in shakespeare.ts).
import { join } from 'node:path';
import { readDataFile, sharedDataDir, sharedDataHint } from './paths.node.ts';

/** Path of the corpus: <shared data>/tinyshakespeare/input.txt. */
export function shakespearePath(): string {
  return join(sharedDataDir(), 'tinyshakespeare', 'input.txt');
}

/** The whole corpus as text. */
export async function loadShakespeareText(path: string = shakespearePath()): Promise<string> {
  return (await readDataFile(path, sharedDataHint())).toString('utf8');
}
