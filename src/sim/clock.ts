// Virtual time for the simulator: seconds as float64 from the start of a simulation (t = 0 is 00:00 UTC of day 0),
// and the event queue that orders everything that happens on that clock.
//
// The queue is a binary min-heap kept in parallel typed arrays rather than an array of event objects: a 100,000-device
// simulation holds one or two pending events per device at all times and pops millions over its run, so events cost
// 25 bytes each and the garbage collector never sees them. Ties on time are broken by insertion order (a sequence
// number), which makes the order of simultaneous events, and so every result, independent of heap internals.

export const MINUTE = 60;
export const HOUR = 3600;
export const DAY = 24 * HOUR;

/** One popped event; `pop` writes into a caller-owned object so the hot loop allocates nothing. */
export interface SimEvent {
  time: number;
  kind: number;
  /** Device index, or -1 for server events. */
  device: number;
  /** A kind-specific integer: a lease id, a round number, a session number. */
  data: number;
}

export class EventQueue {
  private time: Float64Array;
  private seq: Float64Array;
  private kind: Uint8Array;
  private device: Int32Array;
  private data: Int32Array;
  private n = 0;
  private nextSeq = 0;

  constructor(capacity = 1024) {
    const c = Math.max(16, capacity);
    this.time = new Float64Array(c);
    this.seq = new Float64Array(c);
    this.kind = new Uint8Array(c);
    this.device = new Int32Array(c);
    this.data = new Int32Array(c);
  }

  get size(): number {
    return this.n;
  }

  /** Time of the earliest event, or Infinity when the queue is empty. */
  peekTime(): number {
    return this.n === 0 ? Infinity : this.time[0]!;
  }

  push(time: number, kind: number, device: number, data = 0): void {
    if (!Number.isFinite(time)) throw new RangeError(`event time must be finite, got ${time}`);
    if (this.n === this.time.length) this.grow();
    // Sift up from the new leaf, moving parents down until the slot fits.
    const s = this.nextSeq++;
    let i = this.n++;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!before(time, s, this.time[p]!, this.seq[p]!)) break;
      this.copy(p, i);
      i = p;
    }
    this.set(i, time, s, kind, device, data);
  }

  /** Removes the earliest event into `out`; false when the queue is empty. */
  pop(out: SimEvent): boolean {
    if (this.n === 0) return false;
    out.time = this.time[0]!;
    out.kind = this.kind[0]!;
    out.device = this.device[0]!;
    out.data = this.data[0]!;
    const last = --this.n;
    if (last > 0) {
      // Sift the last leaf down from the root.
      const t = this.time[last]!;
      const s = this.seq[last]!;
      const k = this.kind[last]!;
      const d = this.device[last]!;
      const x = this.data[last]!;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        if (l >= last) break;
        const r = l + 1;
        const c = r < last && before(this.time[r]!, this.seq[r]!, this.time[l]!, this.seq[l]!) ? r : l;
        if (!before(this.time[c]!, this.seq[c]!, t, s)) break;
        this.copy(c, i);
        i = c;
      }
      this.set(i, t, s, k, d, x);
    }
    return true;
  }

  private copy(from: number, to: number): void {
    this.set(to, this.time[from]!, this.seq[from]!, this.kind[from]!, this.device[from]!, this.data[from]!);
  }

  private set(i: number, time: number, seq: number, kind: number, device: number, data: number): void {
    this.time[i] = time;
    this.seq[i] = seq;
    this.kind[i] = kind;
    this.device[i] = device;
    this.data[i] = data;
  }

  private grow(): void {
    const c = this.time.length * 2;
    const grown = <T extends Float64Array | Uint8Array | Int32Array>(a: T, make: (n: number) => T): T => {
      const b = make(c);
      b.set(a);
      return b;
    };
    this.time = grown(this.time, (n) => new Float64Array(n));
    this.seq = grown(this.seq, (n) => new Float64Array(n));
    this.kind = grown(this.kind, (n) => new Uint8Array(n));
    this.device = grown(this.device, (n) => new Int32Array(n));
    this.data = grown(this.data, (n) => new Int32Array(n));
  }
}

/** Whether event (t1, s1) comes before (t2, s2): earlier time, or the same time and pushed earlier. */
function before(t1: number, s1: number, t2: number, s2: number): boolean {
  return t1 < t2 || (t1 === t2 && s1 < s2);
}

/** Hours of a virtual time, for reports. */
export function hours(t: number): number {
  return t / HOUR;
}

/** Seconds since the most recent daily start (at `startSec` into each UTC day) before or at t: 0 <= result < DAY. */
export function sinceDaily(t: number, startSec: number): number {
  const x = (t - startSec) % DAY;
  return x < 0 ? x + DAY : x;
}
