// One run's page: the panels, filled from GET /stats and kept live by the run's event stream. Events only say "something
// changed"; the page then refetches the statistics, at most once a second however busy the run is, so a thousand
// devices do not mean a thousand renders. While the stream is down, a slow poll (every 30 s) stands in for it.
import { followRun, getRun, getStats, type RunEvent, type StreamState } from './api.ts';
import { el, replace } from './dom.ts';
import { formatClock } from './format.ts';
import { BytesPanel } from './panels/bytes.ts';
import { DevicesPanel } from './panels/devices.ts';
import { ForgettingPanel } from './panels/forgetting.ts';
import { LeasesPanel } from './panels/leases.ts';
import { QualityPanel } from './panels/quality.ts';
import { StalenessPanel } from './panels/staleness.ts';
import { SummaryPanel } from './panels/summary.ts';
import { TiersPanel } from './panels/tiers.ts';
import { VersionsPanel } from './panels/versions.ts';

const MIN_REFRESH_MS = 1000;
/** A big run's statistics take a while to compute on the coordinator: refresh at most this many times their cost. */
const COST_FACTOR = 10;
const FALLBACK_POLL_MS = 30_000;

const STATE_TEXT: Record<StreamState, string> = {
  connecting: 'Connecting to the live stream…',
  live: 'Live',
  reconnecting: 'Live stream lost; reconnecting (refreshing every 30 s meanwhile)',
};

export function showRunPage(app: HTMLElement, runId: string): void {
  const title = el('h1', {}, 'Run ', el('code', {}, runId));
  const state = el('p', { role: 'status', class: 'stream-state', 'data-state': 'connecting' }, STATE_TEXT.connecting);
  const updated = el('p', { class: 'note', id: 'last-refresh' });
  const error = el('p', { role: 'alert', class: 'error', hidden: true });
  const summary = new SummaryPanel();
  const panels = [new QualityPanel(), new ForgettingPanel(), new BytesPanel(), new StalenessPanel(), new TiersPanel(), new LeasesPanel(), new DevicesPanel(), new VersionsPanel()];
  replace(app,
    el('div', { class: 'run-head' }, title,
      el('p', { class: 'actions' }, el('a', { href: `/runs/${encodeURIComponent(runId)}/join` }, 'Join this run from this device'))),
    state, updated, error, summary.element,
    el('div', { class: 'grid' }, ...panels.map((p) => p.element)));

  let streamState: StreamState = 'connecting';
  let inFlight = false;
  let again = false;
  let lastRefresh = 0;
  let spacing = MIN_REFRESH_MS;
  let timer: ReturnType<typeof setTimeout> | undefined;

  const refresh = async () => {
    inFlight = true;
    lastRefresh = Date.now();
    try {
      const [run, stats] = await Promise.all([getRun(runId), getStats(runId)]);
      document.title = `${run.name} — Tessera`;
      replace(title, run.name, ' ', el('code', { class: 'run-id' }, run.runId));
      summary.update(run, stats);
      for (const p of panels) p.update(stats);
      updated.textContent = `Updated ${formatClock(stats.at)}.`;
      spacing = Math.max(MIN_REFRESH_MS, COST_FACTOR * (stats.computeMs ?? 0));
      error.hidden = true;
    } catch (e) {
      error.hidden = false;
      error.textContent = `Could not load the run: ${e instanceof Error ? e.message : String(e)}`;
    } finally {
      inFlight = false;
      if (again) {
        again = false;
        requestRefresh();
      }
    }
  };

  /** Coalesces bursts of events into at most one refresh per `spacing` (MIN_REFRESH_MS, more for a big run). */
  const requestRefresh = () => {
    if (inFlight) {
      again = true;
      return;
    }
    if (timer !== undefined) return;
    timer = setTimeout(() => {
      timer = undefined;
      void refresh();
    }, Math.max(0, lastRefresh + spacing - Date.now()));
  };

  const onEvent = (e: RunEvent) => {
    if (e.type === 'warning') {
      error.hidden = false;
      error.textContent = `Coordinator warning: ${e.message}`;
    }
    requestRefresh();
  };
  const onState = (s: StreamState) => {
    const wasDown = streamState !== 'live';
    streamState = s;
    state.dataset.state = s;
    state.textContent = STATE_TEXT[s];
    // Whatever happened while the stream was down is fetched once it is back.
    if (s === 'live' && wasDown) requestRefresh();
  };
  followRun(runId, onEvent, onState);
  setInterval(() => {
    if (streamState !== 'live' || Date.now() - lastRefresh > FALLBACK_POLL_MS) requestRefresh();
  }, FALLBACK_POLL_MS);
  void refresh();
}
