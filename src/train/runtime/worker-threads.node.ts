// Node setup for the tensor runtime: relaxed SIMD and a worker pool for jax-js's wasm backend.
//
// Relaxed SIMD gives jax-js's matmul kernels fused multiply-add; Node 20's V8 ships it behind a flag (on by default
// from Node 22 and in Chromium), and the flag must be set before jax-js probes for it.
//
// The worker pool: jax-js parallelises kernels over Web Workers when the global
// `Worker` exists (browsers); Node 20 has only worker_threads, so this adapts one to the other. It must run before
// anything imports '@jax-js/jax', because jax-js builds its wasm backend (shared memory or not) at import time: import
// this module first in every Node entry point.
//
// TESSERA_THREADS sets the pool size (default: all available cores; 0 keeps jax-js single-threaded).
import { Worker as NodeWorker } from 'node:worker_threads';
import { resolveObjectURL } from 'node:buffer';
import { availableParallelism } from 'node:os';
import { setFlagsFromString } from 'node:v8';

setFlagsFromString('--experimental-wasm-relaxed-simd');

// jax-js's worker source is written for a Web Worker: it uses `self.onmessage` and the global `postMessage`.
const WEB_WORKER_PRELUDE = `
const { parentPort } = require('node:worker_threads');
globalThis.self = globalThis;
globalThis.postMessage = (message) => parentPort.postMessage(message);
parentPort.on('message', (data) => globalThis.onmessage?.({ data }));
`;

/** The subset of the Web Worker API that jax-js uses, on a worker_threads Worker. */
class WebWorkerOnNodeThreads {
  onmessage: ((event: { data: unknown }) => void) | null = null;
  onerror: ((event: { message: string }) => void) | null = null;
  private thread: NodeWorker | undefined;
  private queued: unknown[] = [];
  // Every message jax-js posts gets exactly one reply; the thread keeps the process alive only while one is owed.
  private repliesOwed = 0;

  constructor(url: string | URL) {
    const blob = resolveObjectURL(String(url));
    if (blob === undefined) throw new Error(`worker-threads adapter: only blob: URLs are supported, got ${String(url)}`);
    void blob.text().then((source) => {
      const thread = new NodeWorker(WEB_WORKER_PRELUDE + source, { eval: true });
      thread.on('message', (data: unknown) => {
        if (--this.repliesOwed === 0) thread.unref();
        this.onmessage?.({ data });
      });
      thread.on('error', (err: Error) => this.onerror?.({ message: err.message }));
      if (this.repliesOwed === 0) thread.unref();
      this.thread = thread;
      for (const message of this.queued) thread.postMessage(message);
      this.queued = [];
    });
  }

  postMessage(message: unknown): void {
    if (this.repliesOwed++ === 0) this.thread?.ref();
    if (this.thread) this.thread.postMessage(message);
    else this.queued.push(message);
  }

  terminate(): void {
    void this.thread?.terminate();
  }
}

const requested = process.env.TESSERA_THREADS;
const threads = requested === undefined ? availableParallelism() : Number(requested);
if (!Number.isInteger(threads) || threads < 0) throw new Error(`TESSERA_THREADS must be a whole number, got "${requested}"`);
const g = globalThis as { Worker?: unknown; navigator?: { hardwareConcurrency?: number } };
if (threads > 0 && g.Worker === undefined) {
  g.Worker = WebWorkerOnNodeThreads;
  // jax-js sizes its pool from navigator.hardwareConcurrency, which Node 20 lacks.
  if (g.navigator === undefined) g.navigator = { hardwareConcurrency: threads };
}

/** How many threads the wasm backend will use, for reports. */
export const runtimeThreads = threads > 0 ? threads : 1;
