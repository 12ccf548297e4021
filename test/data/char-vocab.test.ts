import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { CharVocab, natsToBits, unigramEntropy } from '../../src/data/char-vocab.ts';
import { DataError } from '../../src/data/errors.ts';
import { loadShakespeareText } from '../../src/data/shakespeare.node.ts';

const corpus = await loadShakespeareText();
const vocab = CharVocab.fromText(corpus);
const ids = vocab.encode(corpus);

describe('CharVocab', () => {
  it('is the sorted unique characters of the corpus', () => {
    assert.equal(vocab.size, 65);
    assert.equal(vocab.chars.join(''), "\n !$&',-.3:;?ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz");
  });

  it('round-trips the corpus and non-ASCII text', () => {
    assert.equal(ids.length, corpus.length);
    assert.equal(vocab.decode(ids), corpus);
    const text = 'héllo 😀 wörld😀';
    const v = CharVocab.fromText(text);
    assert.equal(v.encode(text).length, [...text].length);
    assert.equal(v.decode(v.encode(text)), text);
  });

  it('round-trips through JSON and validates what it restores', () => {
    const restored = CharVocab.fromJSON(JSON.parse(JSON.stringify(vocab)));
    assert.deepEqual(restored.chars, vocab.chars);
    assert.deepEqual(restored.encode('To be, or not to be'), vocab.encode('To be, or not to be'));
    for (const bad of [null, { type: 'bpe', chars: [] }, { type: 'char', chars: ['b', 'a'] }, { type: 'char', chars: ['a', 'a'] }, { type: 'char', chars: ['ab'] }]) {
      assert.throws(() => CharVocab.fromJSON(bad), DataError, JSON.stringify(bad));
    }
  });

  it('rejects characters and ids outside the vocabulary', () => {
    assert.throws(() => vocab.encode('caf\u00e9'), /character "é" at offset 3 is not in the vocabulary/);
    assert.throws(() => vocab.decode([0, 65]), DataError);
  });
});

describe('unigramEntropy', () => {
  it('matches an independent computation on the whole corpus', () => {
    // Reference: python3 -c "import collections, math; t = open('input.txt', encoding='utf-8').read();
    //   c = collections.Counter(t); n = len(t); print(-math.fsum(k / n * math.log(k / n) for k in c.values()))"
    const reference = 3.312795245360308; // nats/char, 4.7793532719618534 bits/char
    const h = unigramEntropy(ids, vocab.size);
    assert.ok(Math.abs(h - reference) / reference < 1e-6, `${h}`);
    assert.ok(Math.abs(natsToBits(h) - 4.7793532719618534) < 1e-6);
  });

  it('is ln(k) for k equally frequent tokens and rejects ids out of range', () => {
    assert.ok(Math.abs(unigramEntropy(Int32Array.of(0, 1, 2, 3, 3, 2, 1, 0), 4) - Math.log(4)) < 1e-12);
    assert.equal(unigramEntropy(Int32Array.of(2, 2, 2), 3), 0);
    assert.throws(() => unigramEntropy(Int32Array.of(0, 3), 3), DataError);
  });
});
