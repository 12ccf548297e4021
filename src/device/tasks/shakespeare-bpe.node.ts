// Tiny Shakespeare as a subword language-modelling task: the char task's split (LEAF roles as shards, each role's
// tail held out) with a byte-level BPE vocabulary trained on the training split only, so held-out text never shapes
// the tokens. Training is deterministic, so every device that loads the task derives the same vocabulary. Loss is
// per token; `charsPerToken` converts it to nats per character, comparable with the char-level task.
import { unigramEntropy } from '../../data/char-vocab.ts';
import { blocksToText, parseSpeeches, partitionBySpeaker, splitHeldOut } from '../../data/shakespeare.ts';
import { loadShakespeareText } from '../../data/shakespeare.node.ts';
import type { BpeTokenizer } from '../../core/tokenizer/bpe.ts';
import { trainBpe } from '../../core/tokenizer/bpe-train.ts';
import type { Task } from './task.ts';
import { groupStreams, tokenStreamBatches } from './token-streams.ts';

export interface ShakespeareBpeOptions {
  vocabSize?: number;
  context?: number;
  width?: number;
  heads?: number;
  layers?: number;
  /** Roles with less speech than this are left out, as in the char task. */
  minChars?: number;
  /** Group the roles into this many shards (groupStreams); default: one shard per role. */
  shards?: number;
}

export interface BpeTask extends Task {
  readonly tokenizer: BpeTokenizer;
  readonly charsPerToken: number;
}

export async function shakespeareBpeTask(options: ShakespeareBpeOptions = {}): Promise<BpeTask> {
  const { vocabSize = 2048, context = 64, width = 128, heads = 4, layers = 2, minChars = 2000, shards } = options;
  const corpus = await loadShakespeareText();
  const { train, heldOut } = splitHeldOut(parseSpeeches(corpus));
  const trainText = blocksToText(train);
  const tokenizer = trainBpe(trainText, { vocabSize });
  const roles = partitionBySpeaker(train, { minChars }).map((c) => tokenizer.encode(blocksToText(c.blocks)));
  const all = tokenizer.encode(trainText);
  const heldText = blocksToText(heldOut);
  const held = tokenizer.encode(heldText);
  const charsPerToken = heldText.length / held.length;
  return {
    name: `shakespeare-bpe${tokenizer.vocabSize}-gpt`,
    model: { kind: 'gpt', vocabSize: tokenizer.vocabSize, context, width, heads, layers, mlpRatio: 4 },
    tokenizer,
    charsPerToken,
    ...tokenStreamBatches({ shards: shards === undefined ? roles : groupStreams(roles, shards), all, heldOut: held, context }),
    baseline: {
      metric: 'loss',
      value: unigramEntropy(held, tokenizer.vocabSize),
      label: `unigram entropy of the held-out text (nats/token; ${(unigramEntropy(held, tokenizer.vocabSize) / charsPerToken).toFixed(3)} nats/char)`,
    },
  };
}
