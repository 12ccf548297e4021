// The simulator's event queue: events come out in time order, simultaneous ones in the order they were pushed, and
// the heap keeps that through growth and interleaved pushes and pops.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Rng } from '../../src/core/rng.ts';
import { DAY, EventQueue, HOUR, sinceDaily, type SimEvent } from '../../src/sim/clock.ts';

function drain(q: EventQueue): SimEvent[] {
  const out: SimEvent[] = [];
  const ev: SimEvent = { time: 0, kind: 0, device: 0, data: 0 };
  while (q.pop(ev)) out.push({ ...ev });
  return out;
}

describe('EventQueue', () => {
  it('pops events in time order, ties in push order, across growth', () => {
    const rng = new Rng(1);
    const q = new EventQueue(4);
    const pushed: Array<{ time: number; data: number }> = [];
    for (let i = 0; i < 5000; i++) {
      // Few distinct times, so many ties.
      const time = rng.int(50);
      q.push(time, i % 7, i, i);
      pushed.push({ time, data: i });
    }
    assert.equal(q.size, 5000, 'every push is held');
    const out = drain(q);
    const expected = [...pushed].sort((a, b) => a.time - b.time || a.data - b.data);
    assert.deepEqual(out.map((e) => [e.time, e.data]), expected.map((e) => [e.time, e.data]), 'sorted by (time, push order)');
    assert.ok(out.every((e) => e.kind === e.data % 7 && e.device === e.data), 'kind and device travel with their event');
    assert.equal(q.size, 0, 'drained');
    assert.equal(q.peekTime(), Infinity, 'an empty queue has no next time');
  });

  it('keeps order when pushes and pops interleave, as in a simulation', () => {
    const rng = new Rng(2);
    const q = new EventQueue();
    const ev: SimEvent = { time: 0, kind: 0, device: 0, data: 0 };
    let now = 0;
    let popped = 0;
    for (let i = 0; i < 200; i++) q.push(rng.next() * 100, 0, 0, i);
    while (q.pop(ev)) {
      assert.ok(ev.time >= now, `time never goes backwards (${ev.time} after ${now})`);
      now = ev.time;
      if (++popped < 20_000) q.push(now + rng.next() * 10, 0, 0, 0);
    }
    assert.equal(popped, 20_000 + 199, 'every event popped once');
  });

  it('refuses a non-finite time', () => {
    assert.throws(() => new EventQueue().push(Infinity, 0, 0), RangeError, 'Infinity is not a time');
  });
});

describe('sinceDaily', () => {
  it('is the time since the latest daily start, in [0, DAY)', () => {
    assert.equal(sinceDaily(22 * HOUR, 20 * HOUR), 2 * HOUR, 'two hours after 20:00');
    assert.equal(sinceDaily(1 * HOUR, 20 * HOUR), 5 * HOUR, 'past midnight counts from yesterday\'s start');
    assert.equal(sinceDaily(3 * DAY + 20 * HOUR, 20 * HOUR), 0, 'exactly at a start');
  });
});
