// Launches Debian's chromium through playwright-core for the browser tests (`bash scripts/setup.sh --test` installs it).
// Screenshots and other artifacts go to artifacts/browser/ (gitignored), which CI keeps.
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before } from 'node:test';
import { chromium, type Browser } from 'playwright-core';
import { startCoordinator, type RunningCoordinator, type ServeOptions } from '../../src/server/http/serve.node.ts';

export const CHROMIUM = process.env.TESSERA_CHROMIUM ?? '/usr/bin/chromium';
export const ARTIFACTS = join('artifacts', 'browser');

export async function launchChromium(): Promise<Browser> {
  mkdirSync(ARTIFACTS, { recursive: true });
  return chromium.launch({
    executablePath: CHROMIUM,
    args: ['--no-sandbox', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
  });
}

/**
 * For the enclosing describe block: a coordinator on a fresh data directory and a browser, started before its tests
 * and closed (the directory removed) after them. Read them through the getters once the tests run.
 */
export function coordinatorWithBrowser(name: string, options: Omit<ServeOptions, 'dataDir' | 'port'>): { srv: () => RunningCoordinator; browser: () => Browser } {
  let dataDir: string | undefined;
  let srv: RunningCoordinator | undefined;
  let browser: Browser | undefined;
  before(async () => {
    dataDir = mkdtempSync(join(tmpdir(), `tessera-${name}-`));
    srv = await startCoordinator({ dataDir, port: 0, ...options });
    browser = await launchChromium();
  });
  after(async () => {
    await browser?.close();
    await srv?.close();
    if (dataDir !== undefined) rmSync(dataDir, { recursive: true, force: true });
  });
  return { srv: () => srv!, browser: () => browser! };
}
