// Grouping a language task's shards for populations with fewer devices than roles: every token of every role lands in
// exactly one group, in order, and the groups are near-equal in size when the roles come sorted by size.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { SHAKESPEARE_MIN_CHARS, shakespeareTask } from '../../src/device/tasks/shakespeare.node.ts';
import { groupStreams } from '../../src/device/tasks/token-streams.ts';
import { Rng } from '../../src/core/rng.ts';
import { CharVocab } from '../../src/data/char-vocab.ts';
import { blocksToText, parseSpeeches, partitionBySpeaker, splitHeldOut } from '../../src/data/shakespeare.ts';
import { loadShakespeareText } from '../../src/data/shakespeare.node.ts';

describe('groupStreams', () => {
  it('deals streams round-robin and concatenates each group in order', () => {
    const s = [[1, 2, 3], [4, 5], [6], [7, 8, 9, 10], [11]].map((a) => Int32Array.from(a));
    const g = groupStreams(s, 2);
    assert.deepEqual(g.map((x) => [...x]), [[1, 2, 3, 6, 11], [4, 5, 7, 8, 9, 10]]);
    assert.deepEqual(groupStreams(s, 5).map((x) => [...x]), s.map((x) => [...x]), 'one stream per group is the identity');
  });

  it('refuses group counts that would leave a group empty or are not whole numbers', () => {
    const s = [Int32Array.of(1), Int32Array.of(2)];
    for (const n of [0, 3, 1.5, Number.NaN]) assert.throws(() => groupStreams(s, n), RangeError, String(n));
  });

  it('a Shakespeare task with 8 shards draws each shard\'s windows from its own roles', async () => {
    const context = 16;
    const [roles, grouped] = [await shakespeareTask({ context }), await shakespeareTask({ context, shards: 8 })];
    assert.equal(grouped.shards, 8);
    assert.ok(roles.shards > 8, `more roles than groups: ${roles.shards}`);
    // The roles' texts, computed here as the data layer gives them, grouped by hand: role i belongs to group i mod 8.
    const corpus = await loadShakespeareText();
    const vocab = CharVocab.fromText(corpus);
    const texts = partitionBySpeaker(splitHeldOut(parseSpeeches(corpus)).train, { minChars: SHAKESPEARE_MIN_CHARS }).map((c) => blocksToText(c.blocks));
    assert.equal(texts.length, roles.shards);
    const groups = Array.from({ length: 8 }, (_, g) => texts.filter((_t, i) => i % 8 === g).join(''));
    for (let k = 0; k < 8; k++) {
      const b = grouped.trainBatches(32, new Rng(k), k)();
      for (let r = 0; r < b.batchSize; r++) {
        const window = vocab.decode(Array.from(b.x.subarray(r * context, (r + 1) * context)));
        assert.ok(groups[k]!.includes(window), `shard ${k}, window ${r} comes from the shard's own roles`);
      }
    }
    assert.throws(() => grouped.trainBatches(4, new Rng(0), 8), RangeError, 'no ninth shard');
  });
});
