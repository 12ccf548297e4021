import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Rng } from '../../src/core/rng.ts';
import { DataError, DataNotFoundError } from '../../src/data/errors.ts';
import { loadShakespeareText } from '../../src/data/shakespeare.node.ts';
import {
  blocksToText,
  normalizeSpeaker,
  parseSpeeches,
  partitionBySpeaker,
  partitionIid,
  splitHeldOut,
  type SpeechBlock,
  type TextClient,
} from '../../src/data/shakespeare.ts';

// The real corpus; a missing shared data folder fails here with a DataNotFoundError saying where it is expected.
const corpus = await loadShakespeareText();
const blocks = parseSpeeches(corpus);
const { train, heldOut } = splitHeldOut(blocks);

const indicesOf = (bs: readonly SpeechBlock[]): number[] => bs.map((b) => b.index);
const clientIndices = (clients: readonly TextClient[]): number[] => clients.flatMap((c) => indicesOf(c.blocks)).sort((a, b) => a - b);
const speechChars = (bs: readonly SpeechBlock[]): number => bs.reduce((s, b) => s + b.text.length, 0);

describe('Tiny Shakespeare parsing', () => {
  it('reads the whole corpus', () => {
    assert.equal(corpus.length, 1_115_394);
    assert.equal(blocks.length, 7222);
  });

  it('finds about 300 speakers, with known roles and case variants merged', () => {
    const speakers = new Set(blocks.map((b) => b.speaker));
    assert.ok(speakers.size >= 280 && speakers.size <= 320, `${speakers.size} speakers`);
    for (const role of ['ROMEO', 'JULIET', 'KING RICHARD III', 'GLOUCESTER', 'PETRUCHIO', 'NURSE', 'LADY CAPULET']) {
      assert.ok(speakers.has(role), role);
    }
    // The corpus spells some roles two ways: `Nurse`/`NURSE`, `LADY  CAPULET` with two spaces.
    assert.ok(!speakers.has('Nurse') && !speakers.has('LADY  CAPULET'));
    assert.equal(normalizeSpeaker('  Lady  Capulet '), 'LADY CAPULET');
  });

  it('renders the blocks back to the corpus, up to runs of blank lines', () => {
    assert.equal(blocksToText(blocks), corpus.trim().replace(/\n{3,}/g, '\n\n'));
  });

  it('keeps headings with no speech and rejects text without a heading', () => {
    assert.deepEqual(
      parseSpeeches('TITUS:\n\nCOMINIUS:\r\nNoble Marcius!\r\n').map((b) => [b.speaker, b.text]),
      [['TITUS', ''], ['COMINIUS', 'Noble Marcius!']],
    );
    assert.throws(() => parseSpeeches('ROMEO:\nHi.\n\nno heading here\n', 'x.txt'), (e: unknown) => {
      return e instanceof DataError && /x\.txt: line 4: expected a speech heading/.test(e.message);
    });
  });
});

describe('Tiny Shakespeare splits', () => {
  it('holds out the last tenth of each role, disjoint from training', () => {
    assert.deepEqual([...indicesOf(train), ...indicesOf(heldOut)].sort((a, b) => a - b), indicesOf(blocks));
    const held = new Set(heldOut);
    assert.ok(train.every((b) => !held.has(b)));
    const fraction = speechChars(heldOut) / speechChars(blocks);
    assert.ok(fraction > 0.08 && fraction < 0.12, `held-out fraction ${fraction}`);
    for (const role of partitionBySpeaker(heldOut)) {
      const lastTrained = Math.max(...train.filter((b) => b.speaker === role.id).map((b) => b.index));
      assert.ok(role.blocks.every((b) => b.index > lastTrained), role.id);
    }
  });

  it('gives one client per role covering every training block once, largest first', () => {
    const clients = partitionBySpeaker(train);
    assert.deepEqual(clientIndices(clients), indicesOf(train));
    assert.equal(new Set(clients.map((c) => c.id)).size, clients.length);
    for (const c of clients) assert.ok(c.blocks.every((b) => b.speaker === c.id));
    for (let i = 1; i < clients.length; i++) assert.ok(clients[i - 1]!.chars >= clients[i]!.chars);
    assert.equal(clients[0]!.id, 'GLOUCESTER');
  });

  it('drops small roles and caps the number of clients', () => {
    const big = partitionBySpeaker(train, { minChars: 10_000 });
    assert.ok(big.length > 10 && big.length < 100 && big.every((c) => c.chars >= 10_000));
    assert.deepEqual(partitionBySpeaker(train, { maxClients: 5 }), partitionBySpeaker(train).slice(0, 5));
  });

  it('deals blocks IID into near-equal clients, reproducibly', () => {
    const clients = partitionIid(train, 7, new Rng(1));
    assert.deepEqual(clientIndices(clients), indicesOf(train));
    const sizes = clients.map((c) => c.blocks.length);
    assert.ok(Math.max(...sizes) - Math.min(...sizes) <= 1);
    assert.deepEqual(partitionIid(train, 7, new Rng(1)), clients);
    assert.notDeepEqual(partitionIid(train, 7, new Rng(2)), clients);
  });
});

describe('Tiny Shakespeare location', () => {
  it('says where shared data is expected when the corpus is missing', async () => {
    const saved = process.env['TESSERA_SHARED_DATA'];
    process.env['TESSERA_SHARED_DATA'] = '/nonexistent/tessera-shared';
    try {
      await assert.rejects(loadShakespeareText(), (e: unknown) => {
        return (
          e instanceof DataNotFoundError &&
          e.message.includes('/nonexistent/tessera-shared/tinyshakespeare/input.txt') &&
          e.message.includes('TESSERA_SHARED_DATA')
        );
      });
    } finally {
      if (saved === undefined) delete process.env['TESSERA_SHARED_DATA'];
      else process.env['TESSERA_SHARED_DATA'] = saved;
    }
  });
});
