/**
 * End to end: the real renderer (built by electron-vite) in Chromium, talking to the real main-process
 * services through the WebSocket bridge.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync } from 'node:fs';
import path from 'node:path';
import type { Page } from 'playwright-core';
import type { Bridge } from '../../src-main/bridge/server';
import { openApp, type App } from '../helpers/app';
import { tempDir } from '../helpers/services';

let app: App;
let bridge: Bridge;
let page: Page;
const shot = (name: string) => app.shot(name);

beforeAll(async () => {
  app = await openApp();
  ({ bridge, page } = app);
  expect(app.errors).toEqual([]);
});

afterAll(async () => {
  await app?.close();
});

describe('app shell in Chromium through the bridge', () => {
  it('creates a project through the real projects service', async () => {
    const parent = tempDir('lathe-e2e-');
    await page.getByLabel('Location (folder)').fill(parent);
    await page.getByLabel('Name').fill('Turning notes');
    await page.getByRole('button', { name: 'Create project' }).click();
    await page.getByTestId('project-open').waitFor();
    expect(await page.getByTestId('project-open').textContent()).toContain(path.join(parent, 'Turning notes'));
    expect(existsSync(path.join(parent, 'Turning notes', 'lathe-project.json'))).toBe(true);
    await shot('shell-projects');
    // A second create in the same place is refused in plain words, with what to do.
    await page.getByRole('button', { name: 'Create project' }).click();
    await expect.poll(() => page.getByRole('alert').textContent()).toContain('already exists');
    expect(await page.getByRole('alert').textContent()).toContain('What to do');
  });

  it('starts a job that streams progress, then cancels it', async () => {
    await page.getByRole('button', { name: 'Activity' }).click();
    await page.getByText('For developers').click(); // the self-test is out of the user's way
    await page.getByLabel('Self-test steps').fill('200');
    await page.getByRole('button', { name: 'Run self-test' }).click();
    const card = page.getByTestId('job-card').first();
    await expect.poll(() => card.getAttribute('data-state')).toBe('running');
    // progress arrives as events: the bar's value moves past zero
    await expect.poll(async () => Number(await card.getByRole('progressbar').getAttribute('aria-valuenow')), { timeout: 20_000 }).toBeGreaterThan(1);
    await shot('shell-activity');
    await card.getByRole('button', { name: 'Cancel' }).click();
    await expect.poll(() => card.getAttribute('data-state'), { timeout: 20_000 }).toBe('cancelled');
  });

  it('reports a crashed job process in the UI and keeps the window working', async () => {
    await page.getByRole('button', { name: 'Activity' }).click();
    // start a job whose process aborts (like a native GPU driver crash), through the real bridge
    await page.evaluate(async (token) => {
      const ws = new WebSocket(`ws://${location.host}/api?token=${token}`);
      await new Promise((r) => ws.addEventListener('open', r, { once: true }));
      ws.send(JSON.stringify({ id: 1, channel: 'jobs.start', payload: { kind: 'selftest', params: { steps: 5, intervalMs: 10, crashAtStep: 2 } } }));
      await new Promise((r) => ws.addEventListener('message', r, { once: true }));
      ws.close();
    }, bridge.token);
    const failed = page.locator('[data-testid="job-card"][data-state="failed"]').first();
    await failed.waitFor({ timeout: 30_000 });
    expect(await failed.getByRole('alert').textContent()).toMatch(/stopped unexpectedly.*What to do/s);
    await shot('shell-crash');
    // the window still works: another job runs to the end
    if (!(await page.getByLabel('Self-test steps').isVisible())) await page.getByText('For developers').click();
    await page.getByLabel('Self-test steps').fill('3');
    await page.getByRole('button', { name: 'Run self-test' }).click();
    await page.locator('[data-testid="job-card"][data-state="done"]').first().waitFor({ timeout: 30_000 });
  });

  it('the bridge rejects a malformed payload with a clear error and refuses tokenless connections', async () => {
    const answer = await page.evaluate(async (token) => {
      const ws = new WebSocket(`ws://${location.host}/api?token=${token}`);
      await new Promise((r) => ws.addEventListener('open', r, { once: true }));
      const reply = new Promise<string>((r) => ws.addEventListener('message', (m) => r(String(m.data)), { once: true }));
      ws.send(JSON.stringify({ id: 7, channel: 'projects.create', payload: { parentDir: 5 } }));
      const text = await reply;
      ws.close();
      return text;
    }, bridge.token);
    const msg = JSON.parse(answer);
    expect(msg.id).toBe(7);
    expect(msg.envelope.ok).toBe(false);
    expect(msg.envelope.error.code).toBe('ipc.badPayload');
    expect(msg.envelope.error.message).toMatch(/projects\.create.*parentDir/);

    const refused = await page.evaluate(async () => {
      const ws = new WebSocket(`ws://${location.host}/api?token=wrong`);
      return new Promise<string>((r) => { ws.onopen = () => r('open'); ws.onerror = () => r('refused'); });
    });
    expect(refused).toBe('refused');
  });

  it('switches to the dark theme and remembers it in settings', async () => {
    const before = await page.evaluate(() => document.documentElement.dataset['theme']);
    const theme = before === 'dark' ? 'light' : 'dark';
    await page.getByRole('button', { name: 'Switch light or dark theme' }).click();
    await expect.poll(() => page.evaluate(() => document.documentElement.dataset['theme'])).toBe(theme);
    await shot(`shell-${theme}`);
    await page.reload();
    await page.getByText('New project').waitFor();
    await expect.poll(() => page.evaluate(() => document.documentElement.dataset['theme'])).toBe(theme);
  });
});
