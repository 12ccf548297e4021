// The hand-written SVG charts: round tick values, log axes, and escaped, well-formed output.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { lineChart, logTicks, niceTicks } from '../../src/sim/svg.ts';

describe('svg charts', () => {
  it('picks round ticks', () => {
    assert.deepEqual(niceTicks(0, 1), [0, 0.2, 0.4, 0.6, 0.8, 1], 'steps of 0.2 over [0, 1]');
    assert.deepEqual(niceTicks(3, 97), [20, 40, 60, 80], 'steps of 20 inside [3, 97]');
    assert.deepEqual(logTicks(-2.2, 2.1), [0.01, 0.1, 1, 10, 100], 'powers of ten across decades');
  });

  it('draws one polyline per series, escapes text, and places the target line', () => {
    const svg = lineChart({
      title: 'loss <&> time', xLabel: 'hours', yLabel: 'loss', logY: true,
      series: [{ name: 'a', points: [[0, 100], [1, 10], [2, 1]] }, { name: 'b', points: [[0, 50], [2, 0.5]] }],
      hline: { y: 2, label: 'target' },
    });
    assert.equal(svg.match(/<polyline/g)?.length, 2, 'two curves');
    assert.ok(svg.includes('loss &lt;&amp;&gt; time'), 'the title is escaped');
    assert.ok(svg.includes('stroke-dasharray'), 'the target is a dashed line');
    assert.ok(svg.trimEnd().endsWith('</svg>'), 'the document is closed');
  });
});
