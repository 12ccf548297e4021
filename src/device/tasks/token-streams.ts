// The part every language-modelling task shares: training windows sampled from one shard's token stream (or from
// all of them), and held-out windows read in order, both of the model's context.
import { lmEvalBatches, sampleLmBatch } from '../../data/lm-batches.ts';
import type { Task } from './task.ts';

export interface TokenStreams {
  /** One token stream per shard (device). */
  readonly shards: readonly Int32Array[];
  /** Every training token, for training without a shard. */
  readonly all: Int32Array;
  readonly heldOut: Int32Array;
  readonly context: number;
}

/**
 * `streams` dealt round-robin into `groups` shards, each the concatenation of its members in order: with streams sorted
 * by size (as partitionBySpeaker sorts roles), every group gets a near-equal share of the text. For populations with
 * fewer devices than roles (a few always-on workers), so that every role is someone's data.
 */
export function groupStreams(streams: readonly Int32Array[], groups: number): Int32Array[] {
  if (!(Number.isInteger(groups) && groups >= 1 && groups <= streams.length)) {
    throw new RangeError(`cannot group ${streams.length} shards into ${groups}: give 1 to ${streams.length}`);
  }
  return Array.from({ length: groups }, (_, g) => {
    const members = streams.filter((_s, i) => i % groups === g);
    const out = new Int32Array(members.reduce((n, m) => n + m.length, 0));
    let at = 0;
    for (const m of members) {
      out.set(m, at);
      at += m.length;
    }
    return out;
  });
}

export function tokenStreamBatches(s: TokenStreams): Pick<Task, 'shards' | 'trainBatches' | 'evalBatches'> {
  return {
    shards: s.shards.length,
    trainBatches(batchSize, rng, shard) {
      const stream = shard === undefined ? s.all : s.shards[shard];
      if (stream === undefined) throw new RangeError(`shard ${shard} does not exist (${s.shards.length} shards)`);
      return () => {
        const b = sampleLmBatch(stream, batchSize, s.context, rng);
        return { x: b.inputs, y: b.targets, batchSize: b.batchSize };
      };
    },
    *evalBatches(batchSize, maxBatches) {
      for (const b of lmEvalBatches(s.heldOut, batchSize, s.context, { maxBatches })) {
        yield { x: b.inputs, y: b.targets, batchSize: b.batchSize };
      }
    },
  };
}
