// Character-level vocabulary for char language models: the sorted unique characters (code points) of a corpus, so
// the same corpus always gives the same ids on every device. Also the unigram entropy, the loss a model that ignores
// context would reach, which the demos report held-out loss against.
import { DataError } from './errors.ts';

/** A character vocabulary: id i is `chars[i]`; chars are sorted by code point and unique. */
export class CharVocab {
  readonly chars: readonly string[];
  // Dense code point -> id table (-1 = not in the vocabulary): an array lookup per character in the encode loop.
  private readonly ids: Int32Array;

  private constructor(chars: readonly string[]) {
    this.chars = chars;
    const points = chars.map((ch) => ch.codePointAt(0)!);
    this.ids = new Int32Array(Math.max(0, ...points) + 1).fill(-1);
    points.forEach((p, id) => (this.ids[p] = id));
  }

  /** The vocabulary of every character that occurs in `text`. */
  static fromText(text: string): CharVocab {
    const seen = new Set<number>();
    for (let i = 0; i < text.length; i++) {
      const p = text.codePointAt(i)!;
      seen.add(p);
      if (p > 0xffff) i++;
    }
    return new CharVocab([...seen].sort((a, b) => a - b).map((p) => String.fromCodePoint(p)));
  }

  /** Restores a vocabulary saved by toJSON, checking it is sorted, unique and one character per entry. */
  static fromJSON(json: unknown): CharVocab {
    const { type, chars } = (typeof json === 'object' && json !== null ? json : {}) as { type?: unknown; chars?: unknown };
    if (type !== 'char' || !Array.isArray(chars)) {
      throw new DataError('a char vocabulary must be {"type": "char", "chars": [...]}');
    }
    let last = -1;
    for (const ch of chars) {
      const p = typeof ch === 'string' ? ch.codePointAt(0) : undefined;
      if (p === undefined || String.fromCodePoint(p) !== ch || p <= last) {
        throw new DataError(`char vocabulary entries must be single characters in strictly increasing order, got ${JSON.stringify(ch)}`);
      }
      last = p;
    }
    return new CharVocab(chars as string[]);
  }

  get size(): number {
    return this.chars.length;
  }

  encode(text: string): Int32Array {
    const out = new Int32Array(text.length);
    let n = 0;
    for (let i = 0; i < text.length; i++) {
      const p = text.codePointAt(i)!;
      const id = p < this.ids.length ? this.ids[p]! : -1;
      if (id < 0) throw new DataError(`character ${JSON.stringify(String.fromCodePoint(p))} at offset ${i} is not in the vocabulary`);
      out[n++] = id;
      if (p > 0xffff) i++;
    }
    return n === out.length ? out : out.slice(0, n);
  }

  decode(ids: ArrayLike<number>): string {
    const parts = new Array<string>(ids.length);
    for (let i = 0; i < ids.length; i++) {
      const ch = this.chars[ids[i]!];
      if (ch === undefined) throw new DataError(`token id ${ids[i]} at position ${i} is outside the vocabulary of ${this.size}`);
      parts[i] = ch;
    }
    return parts.join('');
  }

  toJSON(): { type: 'char'; chars: string[] } {
    return { type: 'char', chars: [...this.chars] };
  }
}

/** Entropy in nats of the token frequencies in `ids`: the cross-entropy of the best context-free model. */
export function unigramEntropy(ids: Int32Array, vocabSize: number): number {
  const counts = new Float64Array(vocabSize);
  for (let i = 0; i < ids.length; i++) {
    const id = ids[i]!;
    if (id < 0 || id >= vocabSize) throw new DataError(`token id ${id} at position ${i} is outside [0, ${vocabSize})`);
    counts[id]!++;
  }
  let h = 0;
  for (const c of counts) if (c > 0) h -= (c / ids.length) * Math.log(c / ids.length);
  return h;
}

/** Converts nats to bits (per character, per token). */
export function natsToBits(nats: number): number {
  return nats / Math.LN2;
}
