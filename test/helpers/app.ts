/** The e2e harness: the built renderer served by the bridge with real services, opened in Chromium. */
import { copyFileSync, existsSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { startBridge, type Bridge } from '../../src-main/bridge/server';
import { launchChromium } from './browser';
import { testServices } from './services';

const RENDERER = path.resolve('out/renderer');
const SHOTS = path.resolve('test-results/screenshots');

export interface App {
  bridge: Bridge;
  browser: Browser;
  page: Page;
  /** Page errors and console errors seen so far. */
  errors: string[];
  /** Screenshot to test-results/; LATHE_UPDATE_DOCS=1 also refreshes docs/screenshots. */
  shot(name: string): Promise<void>;
  close(): Promise<void>;
}

export async function openApp(viewport = { width: 1200, height: 800 }): Promise<App> {
  if (!existsSync(path.join(RENDERER, 'index.html'))) {
    throw new Error('The renderer is not built: run `npm run build` first (the test command does).');
  }
  const bridge = await startBridge({ services: testServices(), staticDir: RENDERER });
  const browser = await launchChromium();
  const page = await browser.newPage({ viewport });
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(e.message));
  page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });
  await page.goto(bridge.pageUrl);
  await page.getByText('New project').waitFor();
  return {
    bridge, browser, page, errors,
    shot: async (name) => {
      mkdirSync(SHOTS, { recursive: true });
      const file = path.join(SHOTS, `${name}.png`);
      await page.screenshot({ path: file, fullPage: true });
      if (process.env['LATHE_UPDATE_DOCS'] === '1') {
        mkdirSync('docs/screenshots', { recursive: true });
        copyFileSync(file, path.join('docs/screenshots', `${name}.png`));
      }
    },
    close: async () => { await browser.close(); await bridge.close(); },
  };
}
