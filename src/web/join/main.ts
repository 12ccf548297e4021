// The join page: one click makes this tab a device of a run. The run comes from the path (/runs/:run/join) or a field,
// the join token from the URL fragment (#token=..., which browsers never send to the server) or a field. The page
// only renders; the device itself is device.ts over the shared lease loop.
import './join.css';
import type { DeviceEvent } from '../../device/lease-loop.ts';
import { PauseGate } from '../../device/pause-gate.ts';
import type { BackendPreference } from '../../train/runtime/jax.ts';
import { runBrowserDevice, type DataSource } from './device.ts';

const app = document.getElementById('app')!;
// Step-by-step numbers change many times a second; only the status line below is announced to screen readers.
app.removeAttribute('aria-live');

const runFromPath = /^\/runs\/([^/]+)\/join\/?$/.exec(location.pathname)?.[1];
const tokenFromHash = new URLSearchParams(location.hash.slice(1)).get('token') ?? '';
const backendFromQuery = new URLSearchParams(location.search).get('backend');

app.innerHTML = `
<section class="join" aria-labelledby="join-title">
  <h1 id="join-title">Join ${runFromPath === undefined ? 'a run' : `run <code>${escapeHtml(decodeURIComponent(runFromPath))}</code>`}</h1>
  <p class="lede">This tab becomes a device of the run: it trains the shared model on text in this browser and sends
  back only the change to the model's weights. Training pauses while the tab is hidden.</p>
  <form id="join-form" class="join-form">
    <div class="field" ${runFromPath === undefined ? '' : 'hidden'}>
      <label for="run-id">Run id</label>
      <input id="run-id" name="run" autocomplete="off" spellcheck="false" required value="${escapeHtml(decodeURIComponent(runFromPath ?? ''))}">
    </div>
    <div class="field">
      <label for="join-token">Join token</label>
      <input id="join-token" name="token" type="password" autocomplete="off" spellcheck="false" required value="${escapeHtml(tokenFromHash)}">
    </div>
    <fieldset class="field">
      <legend>Training text</legend>
      <label class="choice"><input type="radio" name="data" value="public" checked> The run's public text: the coordinator sends this tab one role of its dataset</label>
      <label class="choice"><input type="radio" name="data" value="file"> A text file of mine (read in this tab, never uploaded)</label>
      <label for="text-file" class="file-label">Text file</label>
      <input id="text-file" name="file" type="file" accept=".txt,text/plain" disabled aria-describedby="file-note">
      <p id="file-note" class="note">Characters outside the run's vocabulary are dropped.</p>
    </fieldset>
    <div class="field">
      <label for="backend">Compute</label>
      <select id="backend" name="backend">
        <option value="auto">Automatic: WebGPU if this browser offers it, WebAssembly otherwise</option>
        <option value="wasm">WebAssembly (CPU)</option>
      </select>
    </div>
    <div class="actions">
      <button id="join" type="submit" class="primary">Join this run</button>
      <button id="stop" type="button" disabled>Stop</button>
    </div>
  </form>
  <p id="status" class="status" role="status" aria-live="polite">Not joined.</p>
  <div class="panels">
    <section aria-labelledby="progress-title" class="panel">
      <h2 id="progress-title">Progress</h2>
      <dl class="stats">
        <dt>Compute</dt><dd id="stat-backend">–</dd>
        <dt>Speed</dt><dd id="stat-speed">–</dd>
        <dt>Data</dt><dd id="stat-data">–</dd>
        <dt>Device</dt><dd id="stat-device">–</dd>
        <dt>Lease</dt><dd id="stat-lease">–</dd>
        <dt>Base</dt><dd id="stat-base">–</dd>
        <dt>Step</dt><dd id="stat-step">–</dd>
        <dt>Loss</dt><dd id="stat-loss">–</dd>
        <dt>Run version</dt><dd id="stat-version">–</dd>
      </dl>
      <label for="lease-progress" class="progress-label">Steps of this lease</label>
      <progress id="lease-progress" max="1" value="0"></progress>
    </section>
    <section aria-labelledby="contrib-title" class="panel">
      <h2 id="contrib-title">Your contribution</h2>
      <dl class="stats">
        <dt>Updates accepted</dt><dd id="stat-uploaded">0</dd>
        <dt>Examples trained</dt><dd id="stat-examples">0</dd>
        <dt>Compute time</dt><dd id="stat-compute">0 s</dd>
        <dt>Sent</dt><dd id="stat-bytes">0 KiB</dd>
        <dt>Steps</dt><dd id="stat-steps">0</dd>
        <dt>Leases given up</dt><dd id="stat-abandoned">0</dd>
      </dl>
    </section>
  </div>
  <section aria-labelledby="log-title" class="panel">
    <h2 id="log-title">Log</h2>
    <ol id="log" class="log"></ol>
  </section>
</section>`;

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;
const form = $<HTMLFormElement>('join-form');
const joinButton = $<HTMLButtonElement>('join');
const stopButton = $<HTMLButtonElement>('stop');
const fileInput = $<HTMLInputElement>('text-file');
const backendSelect = $<HTMLSelectElement>('backend');
if (backendFromQuery === 'wasm' || backendFromQuery === 'auto') backendSelect.value = backendFromQuery;
const set = (id: string, text: string) => ($(id).textContent = text);
// Whatever else happens (an upload finishing as the tab is hidden), the status keeps saying that training is paused.
const PAUSED = 'Paused: this tab is hidden. Training resumes when it is visible again.';
const status = (text: string) => set('status', running && pause.paused && text !== PAUSED ? `${text} ${PAUSED}` : text);
const log = (text: string) => {
  const li = document.createElement('li');
  li.textContent = `${new Date().toLocaleTimeString()} ${text}`;
  const list = $('log');
  list.prepend(li);
  while (list.children.length > 30) list.lastElementChild!.remove();
};

for (const radio of Array.from(form.querySelectorAll<HTMLInputElement>('input[name=data]'))) {
  radio.addEventListener('change', () => {
    fileInput.disabled = radio.value !== 'file' || !radio.checked;
    if (!fileInput.disabled) fileInput.focus();
  });
}

const pause = new PauseGate();
let running: AbortController | undefined;
const contribution = { uploaded: 0, examples: 0, computeSeconds: 0, bytes: 0, steps: 0, abandoned: 0 };
let leaseExamples = 0;

// Hidden tabs do not train: the lease loop waits at its next step, and resumes where it was when the tab is back.
document.addEventListener('visibilitychange', () => {
  if (document.visibilityState === 'hidden') {
    pause.pause();
    if (running) status(PAUSED);
  } else {
    pause.resume();
    if (running) status('Resumed: training.');
  }
});

form.addEventListener('submit', (ev) => {
  ev.preventDefault();
  if (running) return;
  const runId = ($<HTMLInputElement>('run-id').value || '').trim();
  const joinToken = $<HTMLInputElement>('join-token').value.trim();
  const useFile = form.querySelector<HTMLInputElement>('input[name=data][value=file]')!.checked;
  const file = useFile ? fileInput.files?.[0] : undefined;
  if (runId === '' || joinToken === '') return status('A run id and a join token are needed to join.');
  if (useFile && file === undefined) return status('Pick a text file, or train on the run\'s public text.');
  void join(runId, joinToken, file, backendSelect.value as BackendPreference);
});

stopButton.addEventListener('click', () => {
  running?.abort();
  status('Stopping after the current step; a half-trained lease is never sent.');
});

async function join(runId: string, joinToken: string, file: File | undefined, backend: BackendPreference): Promise<void> {
  running = new AbortController();
  joinButton.disabled = true;
  stopButton.disabled = false;
  for (const el of Array.from(form.querySelectorAll<HTMLInputElement | HTMLSelectElement>('input, select'))) el.disabled = true;
  try {
    const summary = await runBrowserDevice(
      { coordinator: location.origin, runId, joinToken, backend, ...(file === undefined ? {} : { file }) },
      pause,
      {
        status,
        run: (run) => set('join-title', `Join run ${run.name} (${run.runId})`),
        data: (d: DataSource) => set('stat-data', d.kind === 'file'
          ? `${d.name}: ${d.chars.toLocaleString()} characters, stays in this tab${d.dropped > 0 ? ` (${d.dropped.toLocaleString()} outside the vocabulary dropped)` : ''}`
          : `public text, role ${d.label} (shard ${d.shard}, ${d.chars.toLocaleString()} characters)`),
        profile: (p) => {
          set('stat-backend', `${p.backend === 'webgpu' ? 'WebGPU' : 'WebAssembly'} · ${p.platform}`);
          $('stat-backend').dataset['backend'] = p.backend;
          set('stat-speed', `${p.examplesPerSecond} examples/s (${(1000 * p.benchmark.stepSeconds).toFixed(0)} ms per step of ${p.benchmark.batchSize}); ${p.memoryMiB} MiB budget`);
        },
        weights: (hash, cached) => {
          set('stat-base', `${cached ? 'from this browser\'s cache' : 'downloaded'} (${hash.slice(0, 12)}…)`);
          $('stat-base').dataset['cached'] = String(cached);
          log(cached ? 'base weights from the cache' : 'base weights downloaded and cached');
        },
        event: onEvent,
      },
      running.signal,
    );
    status(`Stopped. ${summary.uploaded} update(s) accepted this session.`);
  } catch (e) {
    if (!running.signal.aborted) {
      status(`Stopped by an error: ${e instanceof Error ? e.message : String(e)}`);
      log(`error: ${e instanceof Error ? e.message : String(e)}`);
    } else {
      status('Stopped.');
    }
  } finally {
    running = undefined;
    joinButton.disabled = false;
    stopButton.disabled = true;
    for (const el of Array.from(form.querySelectorAll<HTMLInputElement | HTMLSelectElement>('input, select'))) el.disabled = false;
    fileInput.disabled = !form.querySelector<HTMLInputElement>('input[name=data][value=file]')!.checked;
  }
}

function onEvent(e: DeviceEvent): void {
  switch (e.type) {
    case 'registered':
      set('stat-device', e.deviceId);
      log(`${e.resumed ? 'resumed as' : 'registered as'} device ${e.deviceId}`);
      status(`Joined as device ${e.deviceId}. Waiting for work…`);
      return;
    case 'lease': {
      const { lease } = e;
      leaseExamples = lease.recipe.localSteps * lease.recipe.batchSize;
      set('stat-lease', lease.leaseId);
      $('stat-lease').dataset['lease'] = lease.leaseId;
      set('stat-step', `0 / ${lease.recipe.localSteps}`);
      const bar = $<HTMLProgressElement>('lease-progress');
      bar.max = lease.recipe.localSteps;
      bar.value = 0;
      status(`Training lease ${lease.leaseId} from version ${lease.baseVersion} (${lease.recipe.localSteps} steps of ${lease.recipe.batchSize}).`);
      return;
    }
    case 'step':
      contribution.steps++;
      set('stat-step', `${e.step} / ${e.steps}`);
      set('stat-loss', e.loss.toFixed(3));
      set('stat-steps', String(contribution.steps));
      $<HTMLProgressElement>('lease-progress').value = e.step;
      return;
    case 'uploaded':
      contribution.uploaded++;
      contribution.examples += leaseExamples;
      contribution.computeSeconds += e.trainSeconds;
      contribution.bytes += e.bytes;
      set('stat-uploaded', String(contribution.uploaded));
      set('stat-examples', contribution.examples.toLocaleString());
      set('stat-compute', `${contribution.computeSeconds.toFixed(1)} s`);
      set('stat-bytes', `${(contribution.bytes / 1024).toFixed(0)} KiB`);
      set('stat-version', String(e.runVersion));
      status(`Update accepted (run at version ${e.runVersion}). ${contribution.uploaded} so far.`);
      log(`${e.secure ? 'secure round' : `update ${e.updateId}`} accepted: train loss ${e.trainLoss.toFixed(3)}, ${e.trainSeconds.toFixed(1)} s, run v${e.runVersion}`);
      return;
    case 'abandoned':
      contribution.abandoned++;
      set('stat-abandoned', String(contribution.abandoned));
      log(`lease ${e.leaseId} given up (${e.reason}): ${e.message}`);
      return;
    case 'waiting':
      status(`Waiting ${(e.ms / 1000).toFixed(0)} s: ${e.reason}.`);
      return;
    case 'retry':
      log(`retrying ${e.what} in ${(e.delayMs / 1000).toFixed(1)} s: ${e.error.message}`);
      return;
    case 'error':
      log(`${e.fatal ? 'fatal error' : 'error'}: ${e.error.message}`);
      return;
  }
}

function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}
