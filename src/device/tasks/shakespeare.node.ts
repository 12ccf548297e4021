// Char-level language modelling on Tiny Shakespeare, one shard per speaking role (the LEAF split), evaluated on a
// held-out tail of every role. Baseline: the unigram entropy of the held-out text, the loss of a model that ignores
// context.
import { CharVocab, unigramEntropy } from '../../data/char-vocab.ts';
import { blocksToText, parseSpeeches, partitionBySpeaker, splitHeldOut } from '../../data/shakespeare.ts';
import { loadShakespeareText } from '../../data/shakespeare.node.ts';
import type { Task } from './task.ts';
import { groupStreams, tokenStreamBatches } from './token-streams.ts';

/** Roles with less speech than this are left out by default (too little text to fill a batch of windows). */
export const SHAKESPEARE_MIN_CHARS = 2000;

export interface ShakespeareOptions {
  context?: number;
  width?: number;
  heads?: number;
  layers?: number;
  /** Roles with less speech than this are left out (too little text to fill a batch of windows). */
  minChars?: number;
  /** Group the roles into this many shards (groupStreams); default: one shard per role. */
  shards?: number;
}

export async function shakespeareTask(options: ShakespeareOptions = {}): Promise<Task> {
  const { context = 64, width = 128, heads = 4, layers = 2, minChars = SHAKESPEARE_MIN_CHARS, shards } = options;
  const corpus = await loadShakespeareText();
  const vocab = CharVocab.fromText(corpus);
  const { train, heldOut } = splitHeldOut(parseSpeeches(corpus));
  const roles = partitionBySpeaker(train, { minChars }).map((c) => vocab.encode(blocksToText(c.blocks)));
  const all = vocab.encode(blocksToText(train));
  const held = vocab.encode(blocksToText(heldOut));
  return {
    name: 'shakespeare-char-gpt',
    model: { kind: 'gpt', vocabSize: vocab.size, context, width, heads, layers, mlpRatio: 4 },
    ...tokenStreamBatches({ shards: shards === undefined ? roles : groupStreams(roles, shards), all, heldOut: held, context }),
    baseline: { metric: 'loss', value: unigramEntropy(held, vocab.size), label: 'unigram entropy of the held-out text (nats/char)' },
  };
}
