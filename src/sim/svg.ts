// Line charts as standalone SVG text, for the simulator's plots (quality against virtual hours and against bytes).
// Hand-written rather than a plotting package: a few axes and polylines are all the reports need, and plain SVG opens
// in any browser and diffs in review.

export interface Series {
  readonly name: string;
  readonly points: ReadonlyArray<readonly [number, number]>;
}

export interface ChartOptions {
  readonly title: string;
  readonly xLabel: string;
  readonly yLabel: string;
  readonly series: readonly Series[];
  readonly width?: number;
  readonly height?: number;
  /** Log-scale y axis (values must be positive); for losses that fall by orders of magnitude. */
  readonly logY?: boolean;
  /** A horizontal reference line (a target or baseline), labelled. */
  readonly hline?: { readonly y: number; readonly label: string };
}

const COLORS = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b', '#e377c2', '#17becf'];

/** About `count` round tick values covering [lo, hi] (steps of 1, 2 or 5 times a power of ten). */
export function niceTicks(lo: number, hi: number, count = 5): number[] {
  if (!(hi > lo)) return [lo];
  const raw = (hi - lo) / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? 10 * mag;
  const ticks: number[] = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) ticks.push(Number(v.toPrecision(12)));
  return ticks;
}

/** Tick values for a log axis spanning log10 values [lo, hi]: powers of ten, with 2 and 5 between when few decades. */
export function logTicks(lo: number, hi: number): number[] {
  const ticks: number[] = [];
  const steps = hi - lo < 2 ? [1, 2, 5] : [1];
  for (let e = Math.floor(lo); e <= Math.ceil(hi); e++) {
    for (const m of steps) {
      const v = m * 10 ** e;
      if (Math.log10(v) >= lo && Math.log10(v) <= hi) ticks.push(Number(v.toPrecision(6)));
    }
  }
  return ticks;
}

function fmt(v: number): string {
  const a = Math.abs(v);
  if (a !== 0 && (a >= 1e5 || a < 1e-3)) return v.toExponential(1);
  return String(Number(v.toPrecision(4)));
}

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

export function lineChart(o: ChartOptions): string {
  const W = o.width ?? 720;
  const H = o.height ?? 420;
  const m = { left: 70, right: 20, top: 40 + 16 * o.series.length, bottom: 50 };
  const legendY = (i: number) => 40 + 16 * i;
  const logY = o.logY === true;
  // Plot in transformed y (log10 on a log axis); ticks are placed in the same space and labelled with real values.
  const ty = (y: number) => (logY ? Math.log10(y) : y);
  const usable = ([x, y]: readonly [number, number]) => Number.isFinite(x) && Number.isFinite(ty(y));
  const pts = o.series.flatMap((s) => s.points).filter(usable);
  const ys = pts.map(([, y]) => ty(y)).concat(o.hline === undefined || !Number.isFinite(ty(o.hline.y)) ? [] : [ty(o.hline.y)]);
  let [x0, x1] = pts.length === 0 ? [0, 1] : [Math.min(...pts.map(([x]) => x)), Math.max(...pts.map(([x]) => x))];
  let [y0, y1] = ys.length === 0 ? [0, 1] : [Math.min(...ys), Math.max(...ys)];
  if (x1 === x0) [x0, x1] = [x0 - 0.5, x1 + 0.5];
  if (y1 === y0) [y0, y1] = [y0 - 0.5, y1 + 0.5];
  const pad = (y1 - y0) * 0.05;
  [y0, y1] = [y0 - pad, y1 + pad];
  const px = (x: number) => m.left + ((x - x0) / (x1 - x0)) * (W - m.left - m.right);
  const py = (y: number) => H - m.bottom - ((ty(y) - y0) / (y1 - y0)) * (H - m.top - m.bottom);
  const yTicks = logY ? logTicks(y0, y1) : niceTicks(y0, y1);
  const out: string[] = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`);
  out.push(`<rect width="${W}" height="${H}" fill="white"/>`);
  out.push(`<text x="${W / 2}" y="22" text-anchor="middle" font-size="15">${esc(o.title)}</text>`);
  for (const t of niceTicks(x0, x1)) {
    const x = px(t).toFixed(1);
    out.push(`<line x1="${x}" y1="${m.top}" x2="${x}" y2="${H - m.bottom}" stroke="#eee"/>`);
    out.push(`<text x="${x}" y="${H - m.bottom + 16}" text-anchor="middle">${fmt(t)}</text>`);
  }
  for (const t of yTicks) {
    const y = py(t).toFixed(1);
    out.push(`<line x1="${m.left}" y1="${y}" x2="${W - m.right}" y2="${y}" stroke="#eee"/>`);
    out.push(`<text x="${m.left - 6}" y="${y}" text-anchor="end" dominant-baseline="middle">${fmt(t)}</text>`);
  }
  out.push(`<rect x="${m.left}" y="${m.top}" width="${W - m.left - m.right}" height="${H - m.top - m.bottom}" fill="none" stroke="#444"/>`);
  out.push(`<text x="${(m.left + W - m.right) / 2}" y="${H - 12}" text-anchor="middle">${esc(o.xLabel)}</text>`);
  out.push(`<text transform="translate(16 ${(m.top + H - m.bottom) / 2}) rotate(-90)" text-anchor="middle">${esc(o.yLabel)}</text>`);
  if (o.hline !== undefined && Number.isFinite(ty(o.hline.y))) {
    const y = py(o.hline.y).toFixed(1);
    out.push(`<line x1="${m.left}" y1="${y}" x2="${W - m.right}" y2="${y}" stroke="#888" stroke-dasharray="5 4"/>`);
    out.push(`<text x="${W - m.right - 4}" y="${Number(y) - 4}" text-anchor="end" fill="#555">${esc(o.hline.label)}</text>`);
  }
  const legend: string[] = [];
  o.series.forEach((s, i) => {
    const color = COLORS[i % COLORS.length]!;
    const d = s.points.filter(usable).map(([x, y]) => `${px(x).toFixed(1)},${py(y).toFixed(1)}`);
    if (d.length > 0) out.push(`<polyline fill="none" stroke="${color}" stroke-width="1.8" points="${d.join(' ')}"/>`);
    // The legend sits above the plot area, one row per series, so it never covers a curve.
    legend.push(`<line x1="${m.left}" y1="${legendY(i)}" x2="${m.left + 20}" y2="${legendY(i)}" stroke="${color}" stroke-width="2"/>`);
    legend.push(`<text x="${m.left + 25}" y="${legendY(i)}" dominant-baseline="middle">${esc(s.name)}</text>`);
  });
  out.push(...legend, '</svg>');
  return out.join('\n') + '\n';
}
