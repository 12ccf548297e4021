#!/usr/bin/env node
// Tessera's one command. The worker-threads adapter must load before anything imports the tensor runtime.
import '../train/runtime/worker-threads.node.ts';
import { Command } from 'commander';
import { demoCommand } from './commands/demo.ts';
import { joinCommand } from './commands/join.ts';
import { serveCommand } from './commands/serve.ts';
import { trainCommand } from './commands/train.ts';

const program = new Command()
  .name('tessera')
  .description('Everyone\'s devices train foundation models together.')
  .showHelpAfterError()
  .addCommand(trainCommand())
  .addCommand(demoCommand())
  .addCommand(serveCommand())
  .addCommand(joinCommand());

await program.parseAsync(process.argv);
