// Reads the real phone list for simulated populations (Node only; parsing and drawing live in population.ts).
import { join } from 'node:path';
import { readDataFile, sharedDataDir, sharedDataHint } from '../data/paths.node.ts';
import { parsePhoneList, type PhoneRecord } from './population.ts';

/** <shared data>/devices/raw_ai_benchmark_list.json: 333 Android phones with AI-Benchmark scores (FLASH, BSD-2). */
export function phoneListPath(): string {
  return join(sharedDataDir(), 'devices', 'raw_ai_benchmark_list.json');
}

export async function loadPhoneList(path: string = phoneListPath()): Promise<PhoneRecord[]> {
  const text = (await readDataFile(path, sharedDataHint())).toString('utf8');
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new Error(`${path}: not valid JSON (${e instanceof Error ? e.message : String(e)})`);
  }
  return parsePhoneList(json);
}
