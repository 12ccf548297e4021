// `tessera demo` (what `npm start` runs): trains a char-level GPT on Tiny Shakespeare and an MLP on Fashion-MNIST on
// this machine, and reports each against its baseline.
import { Command, InvalidArgumentError } from 'commander';
import { runtimeThreads } from '../../train/runtime/worker-threads.node.ts';
import { loadTask } from '../../device/tasks/registry.node.ts';
import { formatReport, trainTask } from './train.ts';

export function demoCommand(): Command {
  return new Command('demo')
    .description('train a char GPT on Tiny Shakespeare and an MLP on Fashion-MNIST locally, and report both')
    .option('--minutes <m>', 'wall-clock budget for the GPT (the MLP takes about a minute)', (v) => {
      const n = Number(v);
      if (!(n > 0)) throw new InvalidArgumentError('--minutes must be a positive number');
      return n;
    }, 4)
    .action(async (opts: { minutes: number }) => {
      console.log(`tessera demo: local training on real data, ${runtimeThreads} thread(s)`);
      const gpt = await trainTask(await loadTask('shakespeare'), {
        steps: 100_000, minutes: opts.minutes, batch: 32, lr: 2e-3, evalEvery: 200, evalBatches: 20, seed: 0,
      });
      const mlp = await trainTask(await loadTask('fashion-mlp'), {
        steps: 3000, minutes: 3, batch: 64, lr: 1e-3, evalEvery: 500, evalBatches: 20, seed: 0,
      });
      console.log(`\n${formatReport(gpt)}\n${formatReport(mlp)}`);
      if (!gpt.beatsBaseline || !mlp.beatsBaseline) process.exitCode = 1;
    });
}
