// Tiny Shakespeare as federated text data. The corpus is a run of speech blocks, each a `SPEAKER:` heading line
// followed by the speech, separated by blank lines. LEAF (Caldas et al. 2018) gives each role its own client, a
// naturally non-IID split; an IID split over blocks is the control. Pure: parses a string, never reads files.
import type { Rng } from '../core/rng.ts';
import { DataError } from './errors.ts';
import { iid } from './partition.ts';

/**
 * One speech: `heading` as written in the corpus, `speaker` its normalized form, `text` the speech lines. The text
 * can be empty: the corpus has about a hundred headings with no speech under them (e.g. `TITUS:` at line 400).
 */
export interface SpeechBlock {
  /** Position of the block in the corpus, 0-based. */
  readonly index: number;
  readonly speaker: string;
  readonly heading: string;
  readonly text: string;
}

/** A client's share of the corpus, blocks in corpus order. */
export interface TextClient {
  readonly id: string;
  readonly blocks: readonly SpeechBlock[];
  /** Characters of speech (block texts, without headings): the size measure used for filtering and ordering. */
  readonly chars: number;
}

export interface SpeakerPartitionOptions {
  /** Drop roles with fewer speech characters than this (default 0: keep all). */
  readonly minChars?: number;
  /** Keep only the largest roles, at most this many (default: all). */
  readonly maxClients?: number;
}

/** Same role, same client: trims, collapses inner whitespace and upper-cases (the corpus has `Nurse` and `NURSE`). */
export function normalizeSpeaker(heading: string): string {
  return heading.trim().replace(/\s+/g, ' ').toUpperCase();
}

/** Parses the corpus into speech blocks; a block that does not start with a `NAME:` heading is a DataError. */
export function parseSpeeches(corpus: string, source?: string): SpeechBlock[] {
  const lines = corpus.replace(/\r\n/g, '\n').split('\n');
  const blocks: SpeechBlock[] = [];
  let line = 0;
  while (line < lines.length) {
    if (lines[line]!.trim() === '') {
      line++;
      continue;
    }
    const start = line;
    while (line < lines.length && lines[line]!.trim() !== '') line++;
    const heading = lines[start]!;
    if (!heading.endsWith(':') || heading.trim() === ':') {
      throw new DataError(`line ${start + 1}: expected a speech heading 'SPEAKER:', got ${JSON.stringify(heading)}`, source);
    }
    const name = heading.slice(0, -1);
    blocks.push({ index: blocks.length, speaker: normalizeSpeaker(name), heading: name, text: lines.slice(start + 1, line).join('\n') });
  }
  return blocks;
}

/** Renders blocks back in the corpus format (headings as written, one blank line between blocks). */
export function blocksToText(blocks: readonly SpeechBlock[]): string {
  return blocks.map((b) => (b.text === '' ? `${b.heading}:` : `${b.heading}:\n${b.text}`)).join('\n\n');
}

/**
 * Holds out, per role, the last `fraction` of its blocks by position (floor, so a role with fewer than 1/fraction
 * blocks keeps all of them for training). Per-role like LEAF, and the held-out speeches come after the trained ones,
 * so evaluation asks for text that continues a role. Both halves come back in corpus order.
 */
export function splitHeldOut(
  blocks: readonly SpeechBlock[],
  fraction = 0.1,
): { train: SpeechBlock[]; heldOut: SpeechBlock[] } {
  if (!(fraction >= 0 && fraction < 1)) throw new DataError(`held-out fraction must be in [0, 1), got ${fraction}`);
  const held = new Set<SpeechBlock>();
  for (const roleBlocks of groupBySpeaker(blocks).values()) {
    const count = Math.floor(roleBlocks.length * fraction);
    for (const b of roleBlocks.slice(roleBlocks.length - count)) held.add(b);
  }
  return { train: blocks.filter((b) => !held.has(b)), heldOut: blocks.filter((b) => held.has(b)) };
}

/** LEAF's split: one client per role, largest roles first (ties by name). */
export function partitionBySpeaker(blocks: readonly SpeechBlock[], options: SpeakerPartitionOptions = {}): TextClient[] {
  const { minChars = 0, maxClients = Infinity } = options;
  return [...groupBySpeaker(blocks)]
    .map(([id, roleBlocks]) => textClient(id, roleBlocks))
    .filter((c) => c.chars >= minChars)
    .sort((a, b) => b.chars - a.chars || (a.id < b.id ? -1 : 1))
    .slice(0, maxClients);
}

/** The IID control: blocks dealt at random into `clients` clients of near-equal block counts. */
export function partitionIid(blocks: readonly SpeechBlock[], clients: number, rng: Rng): TextClient[] {
  return iid(blocks.length, clients, rng).map((part, c) => textClient(`iid-${c}`, Array.from(part, (i) => blocks[i]!)));
}

function groupBySpeaker(blocks: readonly SpeechBlock[]): Map<string, SpeechBlock[]> {
  const roles = new Map<string, SpeechBlock[]>();
  for (const b of blocks) {
    const role = roles.get(b.speaker);
    if (role === undefined) roles.set(b.speaker, [b]);
    else role.push(b);
  }
  return roles;
}

function textClient(id: string, blocks: SpeechBlock[]): TextClient {
  return { id, blocks, chars: blocks.reduce((s, b) => s + b.text.length, 0) };
}
