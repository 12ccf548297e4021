// Continual runs: held-out loss on each slice of the task's held-out data (a continual task's eras) by version, and
// how much of its best each slice has lost since (stats.ts, sliceForgetting). Hidden for tasks without slices.
import type { RunStats } from '../api.ts';
import { Chart, type SeriesSpec } from '../chart.ts';
import { el, headRow, replace, scrollTable } from '../dom.ts';
import { formatMetric } from '../format.ts';

// Distinguishable on white and dark backgrounds (Okabe-Ito, then two more).
const COLORS = ['#0072b2', '#e69f00', '#009e73', '#cc79a7', '#d55e00', '#56b4e9', '#7f7f7f', '#000000'];

export class ForgettingPanel {
  readonly element: HTMLElement;
  private readonly chart = new Chart('chart-slices', 'Held-out loss by slice and version');
  private readonly body = el('tbody');

  constructor() {
    const table = el('table', { id: 'forgetting-table' },
      el('caption', { class: 'visually-hidden' }, 'Forgetting by slice'),
      headRow('Slice', 'Best loss', 'at version', 'Now', 'at version', 'Forgetting'), this.body);
    this.element = el('section', { class: 'panel wide', 'aria-labelledby': 'forgetting-title', id: 'forgetting', hidden: true },
      el('h2', { id: 'forgetting-title' }, 'Forgetting'),
      el('p', { class: 'note' }, 'Held-out loss on each slice of the held-out data (nats per token). Forgetting is the loss now minus the best any version reached.'),
      el('div', { class: 'charts' }, this.chart.figure),
      scrollTable('Forgetting by slice', table));
  }

  update(stats: RunStats): void {
    if (stats.forgetting.length === 0) {
      this.element.hidden = true;
      return;
    }
    this.element.hidden = false;
    const slices = stats.forgetting.map((f) => f.slice);
    const evaluated = stats.versions.filter((v) => v.slices !== undefined);
    const series = slices.map((s, i): SeriesSpec => ({ label: s, scale: 'loss', color: COLORS[i % COLORS.length]!, format: formatMetric }));
    const columns = slices.map((s) => evaluated.map((v) => {
      const x = v.slices![s];
      return x === undefined || !Number.isFinite(x) ? null : x;
    }));
    const worst = [...stats.forgetting].sort((a, b) => b.forgetting - a.forgetting)[0]!;
    const summary = `${slices.length} slices over ${evaluated.length} evaluated versions; most forgotten: ${worst.slice}, ` +
      `loss ${formatMetric(worst.current)} now against its best ${formatMetric(worst.best)} at version ${worst.bestVersion}.`;
    this.chart.update({ x: { time: false, label: 'version' }, series }, [evaluated.map((v) => v.version), ...columns], summary);
    replace(this.body, ...stats.forgetting.map((f) =>
      el('tr', { 'data-slice': f.slice },
        el('th', { scope: 'row' }, f.slice),
        el('td', { class: 'num' }, formatMetric(f.best)),
        el('td', { class: 'num' }, f.bestVersion),
        el('td', { class: 'num' }, formatMetric(f.current)),
        el('td', { class: 'num' }, f.currentVersion),
        el('td', { class: 'num', 'data-column': 'forgetting' }, formatMetric(f.forgetting)))));
  }
}
