// The coordinator for bench/checkin.ts, in its own process so the load generator does not share its event loop.
// Same startCoordinator as `tessera serve`, with the rate limits lifted: they exist to shed abusive clients, and
// from one loopback address at capacity they would be all this benchmark measured. Prints `listening on <url>`, then
// answers {type: 'memory'} messages on the IPC channel with its memory after a full GC (run with --expose-gc).
//
//   node --expose-gc --import tsx bench/checkin-server.ts --data-dir <dir>     (TESSERA_ADMIN_TOKEN must be set)
import { Command } from 'commander';
import { startCoordinator } from '../src/server/http/serve.node.ts';

const opts = new Command().requiredOption('--data-dir <dir>').parse().opts<{ dataDir: string }>();
const adminToken = process.env.TESSERA_ADMIN_TOKEN;
if (!adminToken) throw new Error('set TESSERA_ADMIN_TOKEN');
const unlimited = { perSecond: 1e9, burst: 1e9 };
const running = await startCoordinator({
  dataDir: opts.dataDir, port: 0, adminToken, evaluate: false, perAddress: unlimited, perDevice: unlimited, log: () => {},
});
console.log(`listening on ${running.url}`);

const gc = (globalThis as { gc?: () => void }).gc;
process.on('message', (m: { type?: string }) => {
  if (m.type !== 'memory') return;
  // Twice: objects with finalizers (sockets, wasm memories) are freed only by the collection after the one that
  // found them dead.
  gc?.();
  gc?.();
  const { rss, heapUsed, external, arrayBuffers } = process.memoryUsage();
  process.send?.({ type: 'memory', rss, heapUsed, external, arrayBuffers, gc: gc !== undefined });
});
// The driver closes the channel when it is done (or dies): stop then, so no server outlives its benchmark.
process.on('disconnect', () => void running.close().then(() => process.exit(0)));
