/**
 * A model from the Hub end to end: the real renderer in Chromium, the real services behind the bridge, the
 * Hub played by the local stand-in (test/helpers/hub-server.ts, reached through HF_ENDPOINT). Recommended
 * list by memory, search, a gated model refused in plain words, a download cancelled, then continued with
 * visible progress until the model is checked and chosen for the project.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import type { Page } from 'playwright-core';
import { createTinyModel } from '../../src-main/engine/models';
import { openApp, type App } from '../helpers/app';
import { startHubServer, type HubServer } from '../helpers/hub-server';
import { tempDir } from '../helpers/services';

let app: App;
let page: Page;
let hub: HubServer;
let oldEndpoint: string | undefined;

beforeAll(async () => {
  const src = path.join(tempDir('lathe-e2e-hub-src-'), 'tiny');
  // A little larger than the default tiny model, so the download's progress is visible.
  const made = await createTinyModel('llama', src, { seed: 2, overrides: { hidden_size: 128, intermediate_size: 256 } });
  hub = await startHubServer([
    { id: 'lathe-test/tiny-llama', dir: src, downloads: 1200, parameters: made.parameters },
    { id: 'lathe-test/tiny-gated', dir: src, gated: true, downloads: 30, parameters: made.parameters },
  ], { token: 'hf_e2e_token_never_used' });
  oldEndpoint = process.env['HF_ENDPOINT'];
  process.env['HF_ENDPOINT'] = hub.endpoint;
  app = await openApp({ width: 1200, height: 900 });
  page = app.page;
}, 120_000);

afterAll(async () => {
  await app?.close();
  await hub?.close();
  if (oldEndpoint === undefined) delete process.env['HF_ENDPOINT']; else process.env['HF_ENDPOINT'] = oldEndpoint;
});

describe('a model from the Hub', () => {
  it('recommends starting models by memory and finds models by name', async () => {
    await page.getByLabel('Location (folder)').fill(tempDir('lathe-e2e-hub-'));
    await page.getByLabel('Name').fill('Bowls');
    await page.getByRole('button', { name: 'Create project' }).click();
    await page.getByTestId('project-open').waitFor();

    // A project without a model shows the Hub panel open (the newcomer's next step).
    expect(await page.getByTestId('hub-panel').getAttribute('open')).not.toBeNull();
    const rec = page.getByTestId('hub-recommended');
    await rec.waitFor();
    await page.getByLabel('Memory for training (GB)').fill('26');
    await page.getByLabel('Memory for training (GB)').dispatchEvent('change');
    await page.getByLabel('Trains on').selectOption('gpu');
    await expect.poll(() => rec.locator('tr[data-repo="Qwen/Qwen2.5-7B-Instruct"] [data-testid="fit"]').textContent())
      .toBe('fits in your 26.0 GB: yes, with QLoRA');
    expect(await rec.locator('tr[data-repo="HuggingFaceTB/SmolLM2-135M-Instruct"] [data-testid="fit"]').textContent()).toBe('fits in your 26.0 GB: yes');
    // In a browser the token cannot be kept: said plainly, with what to do.
    expect(await page.getByTestId('hub-token-unavailable').textContent()).toContain('only the desktop app');

    await page.getByLabel('Find a model').fill('tiny');
    await page.getByRole('button', { name: 'Search' }).click();
    const results = page.getByTestId('hub-results');
    await results.waitFor();
    expect(await results.locator('tbody tr').evaluateAll((rows) => rows.map((r) => r.getAttribute('data-repo')))).toEqual(['lathe-test/tiny-llama', 'lathe-test/tiny-gated']);
    expect(await results.locator('tr[data-repo="lathe-test/tiny-llama"] [data-testid="fit"]').textContent()).toMatch(/^fits in your 26\.0 GB: yes/);
    await app.shot('hub-search');
  });

  it('refuses a gated model without a token in plain words', async () => {
    await page.getByTestId('hub-results').locator('tr[data-repo="lathe-test/tiny-gated"]').getByRole('button', { name: 'Download' }).click();
    const box = page.getByTestId('hub-download');
    await expect.poll(() => box.textContent(), { timeout: 30_000 }).toContain('needs you to accept its license on huggingface.co and a token');
    expect(await box.getByRole('alert').textContent()).toContain('What to do');
  });

  it('cancels a download, keeping what arrived', async () => {
    hub.faults.chunkDelayMs = 150;
    await page.getByTestId('hub-results').locator('tr[data-repo="lathe-test/tiny-llama"]').getByRole('button', { name: 'Download' }).click();
    const bar = page.getByRole('progressbar', { name: 'Download progress' });
    await expect.poll(async () => Number(await bar.getAttribute('aria-valuenow')), { timeout: 30_000 }).toBeGreaterThanOrEqual(5);
    await page.getByRole('button', { name: 'Cancel download' }).click();
    await expect.poll(() => page.getByTestId('hub-download').textContent(), { timeout: 30_000 }).toContain('Download stopped. What arrived is kept');
    expect(await page.getByTestId('project-model').textContent()).toBe('none chosen yet');
  }, 60_000);

  it('downloads with visible progress and chooses the checked model for the project', async () => {
    hub.faults.chunkDelayMs = 40;
    hub.cdnLog.length = 0;
    await page.getByTestId('hub-results').locator('tr[data-repo="lathe-test/tiny-llama"]').getByRole('button', { name: 'Download' }).click();
    const progress = page.getByTestId('hub-progress');
    await expect.poll(() => progress.textContent(), { timeout: 30_000 }).toMatch(/Downloading — .* of .* · .*\/s/);
    const bar = page.getByRole('progressbar', { name: 'Download progress' });
    await expect.poll(async () => Number(await bar.getAttribute('aria-valuenow')), { timeout: 30_000 }).toBeGreaterThanOrEqual(20);
    expect(Number(await bar.getAttribute('aria-valuenow'))).toBeLessThan(100);
    await app.shot('hub-download');
    await page.getByTestId('hub-done').waitFor({ timeout: 60_000 });
    // It continued the cancelled download (a Range request) rather than starting again.
    expect(await page.getByTestId('hub-done').textContent()).toContain('continued an earlier download');
    expect(hub.cdnLog.some((l) => l.range !== undefined)).toBe(true);
    await expect.poll(() => page.getByTestId('project-model').textContent(), { timeout: 30_000 }).toContain('lathe-test--tiny-llama');
    const check = await page.getByTestId('model-check').textContent();
    expect(check).toContain('LlamaForCausalLM');
    const manifest = JSON.parse(readFileSync(path.join(await projectPath(), 'lathe-project.json'), 'utf8')) as { modelPath: string };
    expect(manifest.modelPath).toMatch(/lathe-test--tiny-llama$/);
    // The LFS files came through the redirect to the file server, resumable by Range.
    expect(hub.cdnLog.length).toBeGreaterThan(0);
    expect(app.errors).toEqual([]);
  }, 120_000);
});

async function projectPath(): Promise<string> {
  return (await page.locator('[data-testid="project-open"] p.muted').first().textContent())!.trim();
}
