// `tessera join`: makes this machine a device of a run. It reads the run's task from the coordinator, loads that task's
// data locally, measures how fast it trains the run's model, registers (or resumes as the device it was), and works
// leases until stopped. Ctrl-C stops after the current step without uploading half a result; a second Ctrl-C forces.
import { join } from 'node:path';
import { Command, InvalidArgumentError } from 'commander';
import { MultiBar, Presets, type SingleBar } from 'cli-progress';
import { Rng } from '../../core/rng.ts';
import { withRetry } from '../../device/backoff.ts';
import { CoordinatorClient } from '../../device/client.ts';
import { FileResidualStore } from '../../device/error-feedback.node.ts';
import { FileIdentityStore } from '../../device/identity.node.ts';
import { runLeaseLoop, type DeviceEvent, type LoopSummary } from '../../device/lease-loop.ts';
import { defaultMemoryMiB, nodePlatform } from '../../device/profile.node.ts';
import { probeProfile } from '../../device/profile.ts';
import { loadTask, TASK_NAMES, type TaskName } from '../../device/tasks/registry.node.ts';
import { DiskWeightsCache } from '../../device/weights-cache.node.ts';
import { createModel } from '../../train/models/registry.ts';
import { runtimeThreads } from '../../train/runtime/worker-threads.node.ts';

export interface JoinOptions {
  token: string;
  run: string;
  shard?: number;
  memory?: number;
  slowdown: number;
  stateDir: string;
  maxLeases?: number;
  quiet?: boolean;
}

export async function joinRun(url: string, opts: JoinOptions, signal: AbortSignal): Promise<LoopSummary> {
  const client = new CoordinatorClient(url, { weightDeltas: true });
  const say = opts.quiet ? () => {} : (line: string) => console.log(line);
  const run = await withRetry(() => client.getRun(opts.run, signal), {
    signal,
    // Devices may start before their coordinator (the demo, a fleet restart): wait for it, saying so.
    onRetry: (e, attempt, ms) => {
      if (attempt === 0 || !opts.quiet) console.error(`tessera join: coordinator not reachable (${(e as Error).message}); retrying in ${(ms / 1000).toFixed(1)} s`);
    },
  });
  if (!(TASK_NAMES as readonly string[]).includes(run.task)) {
    throw new Error(`run ${run.runId} trains task ${run.task}, which this device has no data for (known: ${TASK_NAMES.join(', ')})`);
  }
  const task = await loadTask(run.task as TaskName, run.model);
  if (opts.shard !== undefined && opts.shard >= task.shards) {
    throw new Error(`--shard must be below ${task.shards}, the number of shards of ${run.task}`);
  }
  const model = createModel(run.model);
  const { profile, benchmark } = await probeProfile(model, task.trainBatches(16, new Rng(0), opts.shard), {
    memoryMiB: opts.memory ?? defaultMemoryMiB(), slowdown: opts.slowdown, platform: nodePlatform(), signal,
  });
  say(`tessera join: run ${run.runId} (${run.name}, task ${run.task}) on ${runtimeThreads} thread(s); ` +
    `${profile.examplesPerSecond} examples/s (${(1000 * benchmark.stepSeconds).toFixed(0)} ms/step` +
    `${opts.slowdown > 1 ? `, slowed ${opts.slowdown}x` : ''}), ${profile.memoryMiB} MiB`);

  const display = opts.quiet ? quietDisplay() : progressDisplay();
  try {
    return await runLeaseLoop({
      client, runId: run.runId, joinToken: opts.token, model: run.model, task, profile,
      identity: new FileIdentityStore(opts.stateDir, url, run.runId),
      residuals: new FileResidualStore(opts.stateDir, url, run.runId),
      cache: new DiskWeightsCache(join(opts.stateDir, 'weights')),
      ...(opts.shard === undefined ? {} : { shard: opts.shard }),
      slowdown: opts.slowdown, maxLeases: opts.maxLeases, signal, onEvent: display.onEvent,
    });
  } finally {
    display.stop();
  }
}

interface Display {
  onEvent(e: DeviceEvent): void;
  stop(): void;
}

/** Demo devices run many to a terminal: they report only what went wrong, on stderr. (Fatal errors: joinCommand.) */
function quietDisplay(): Display {
  return {
    onEvent(e) {
      if (e.type === 'error' && !e.fatal) console.error(`tessera join: ${e.error.message}`);
    },
    stop() {},
  };
}

/** One bar over the current lease's steps, with notable events logged above it (and a line every 15 s off a TTY). */
function progressDisplay(): Display {
  const multi = new MultiBar({
    format: '{lease} |{bar}| step {value}/{total} | loss {loss} | uploaded {uploaded} | run v{version} | {status}',
    hideCursor: true, noTTYOutput: true, notTTYSchedule: 15_000, clearOnComplete: false, gracefulExit: false,
  }, Presets.shades_classic);
  const tty = process.stdout.isTTY === true;
  let bar: SingleBar | undefined;
  let step = 0;
  const state = { lease: '-', loss: '-', uploaded: 0, version: '-' as number | string, status: 'starting' };
  // On a terminal, lines go above the bar at its next redraw; elsewhere (logs, CI) they are printed at once.
  const log = (line: string) => (tty ? multi.log(`${line}\n`) : console.log(line));
  const show = (value = step, total?: number) => {
    step = value;
    bar ??= multi.create(total ?? 1, value, state);
    if (total !== undefined) bar.setTotal(total);
    bar.update(value, state);
  };
  return {
    onEvent(e) {
      switch (e.type) {
        case 'registered':
          log(`${e.resumed ? 'resumed as' : 'registered as'} device ${e.deviceId}${e.shard === undefined ? '' : `, shard ${e.shard}`}`);
          break;
        case 'lease':
          Object.assign(state, { lease: e.lease.leaseId, status: `training from v${e.lease.baseVersion}` });
          show(0, e.lease.recipe.localSteps);
          return;
        case 'step':
          state.loss = e.loss.toFixed(3);
          show(e.step);
          return;
        case 'uploaded':
          Object.assign(state, { uploaded: state.uploaded + 1, version: e.runVersion, status: `uploaded in ${e.trainSeconds.toFixed(1)} s` });
          break;
        case 'waiting':
          state.status = `waiting ${(e.ms / 1000).toFixed(1)} s: ${e.reason}`;
          break;
        case 'retry':
          state.status = `retry ${e.attempt + 1} of ${e.what} in ${(e.delayMs / 1000).toFixed(1)} s: ${e.error.message}`;
          break;
        case 'model':
          log(`the run's model changed (it grew): now training ${JSON.stringify(e.model)}`);
          break;
        case 'abandoned':
          log(`lease ${e.leaseId} abandoned (${e.reason}): ${e.message}`);
          state.status = `abandoned (${e.reason})`;
          break;
        case 'error':
          if (e.fatal) return; // joinCommand reports it once the loop has ended
          log(`error: ${e.error.message}`);
          break;
      }
      show();
    },
    stop() {
      if (tty && bar !== undefined) multi.update(); // flush lines logged since the last redraw
      multi.stop();
    },
  };
}

const count = (name: string, min: number) => (v: string) => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < min) throw new InvalidArgumentError(`${name} must be an integer >= ${min}`);
  return n;
};

export function joinCommand(): Command {
  return new Command('join')
    .description('make this machine a device of a run: train leases on local data and upload updates until stopped')
    .argument('<url>', 'the coordinator, e.g. http://127.0.0.1:8787', (v: string) => {
      if (!URL.canParse(v)) throw new InvalidArgumentError(`${v} is not a URL`);
      return v;
    })
    .requiredOption('--token <joinToken>', 'the run\'s join token (shown once when the run was created)')
    .requiredOption('--run <runId>', 'which run to join')
    .option('--shard <n>', 'which shard of the task\'s data to train on (default: from the device id)', count('--shard', 0))
    .option('--memory <MiB>', 'memory this device may spend on training (default: half of physical memory)', count('--memory', 1))
    .option('--slowdown <x>', 'train x times slower than this machine can (simulates a slower device)', (v) => {
      const n = Number(v);
      if (!(n >= 1) || !Number.isFinite(n)) throw new InvalidArgumentError('--slowdown must be a number >= 1');
      return n;
    }, 1)
    .option('--state-dir <dir>', 'where the device keeps its identity and cached weights', '.tessera/device')
    .option('--max-leases <n>', 'stop after uploading this many updates', count('--max-leases', 1))
    .option('--quiet', 'no progress display; report errors only')
    .action(async (url: string, opts: JoinOptions) => {
      const controller = new AbortController();
      const onSignal = () => {
        if (controller.signal.aborted) process.exit(130); // the second Ctrl-C does not wait
        if (!opts.quiet) console.error('\nstopping after the current step (Ctrl-C again to force)');
        controller.abort();
      };
      process.on('SIGINT', onSignal);
      process.on('SIGTERM', onSignal);
      try {
        const summary = await joinRun(url, opts, controller.signal);
        if (!opts.quiet) {
          console.log(`device ${summary.deviceId}: ${summary.uploaded} update(s) uploaded, ${summary.abandoned} lease(s) abandoned, ` +
            `${summary.steps} steps${summary.lastRunVersion === undefined ? '' : `; run at version ${summary.lastRunVersion}`}`);
        }
      } catch (e) {
        if (!controller.signal.aborted) {
          console.error(`tessera join: ${e instanceof Error ? e.message : String(e)}`);
          process.exitCode = 1;
        }
      } finally {
        process.off('SIGINT', onSignal);
        process.off('SIGTERM', onSignal);
      }
    });
}
