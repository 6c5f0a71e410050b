/**
 * The newcomer's path, counted: a folder of documents and a model from the Hub become a verified merged
 * model in at most 10 user actions (a click or a typed field each; waiting is not an action). The real
 * renderer in Chromium, the real services behind the bridge, the Hub played by the local stand-in
 * (test/helpers/hub-server.ts) serving a small generated model under a recommended model's name.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cpSync, existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import type { Page } from 'playwright-core';
import { resourcesDir } from '../../src-main/services/resources';
import { openApp, type App } from '../helpers/app';
import { startHubServer, type HubServer } from '../helpers/hub-server';
import { tempDir } from '../helpers/services';

const REPO = 'HuggingFaceTB/SmolLM2-135M-Instruct';
const MAX_ACTIONS = 10;

let app: App;
let page: Page;
let hub: HubServer;
const saved: Record<string, string | undefined> = {};
const projectsDir = path.join(tempDir('lathe-e2e-newcomer-'), 'Lathe projects');
const documents = path.join(tempDir('lathe-e2e-docs-'), 'My turning notes');

/** Every user action goes through here, so the count is the test's, not a guess. */
const actions: string[] = [];
async function act(what: string, f: () => Promise<unknown>): Promise<void> {
  actions.push(what);
  await f();
}

function setEnv(name: string, value: string): void {
  saved[name] = process.env[name];
  process.env[name] = value;
}

beforeAll(async () => {
  // The user's documents: the sample corpus's notes folder, copied to a folder of their own.
  cpSync(path.join(resourcesDir(), 'corpus', 'sample', 'notes'), documents, { recursive: true });
  hub = await startHubServer([{ id: REPO, dir: path.join(resourcesDir(), 'models', 'tiny-default'), downloads: 5000, parameters: 128_320 }]);
  setEnv('HF_ENDPOINT', hub.endpoint);
  setEnv('LATHE_PROJECTS_DIR', projectsDir);
  app = await openApp({ width: 1200, height: 900 });
  page = app.page;
}, 120_000);

afterAll(async () => {
  await app?.close();
  await hub?.close();
  for (const [k, v] of Object.entries(saved)) if (v === undefined) delete process.env[k]; else process.env[k] = v;
});

describe('the newcomer path', () => {
  it(`goes from a folder of documents and a Hub model to a verified merged model in ≤ ${MAX_ACTIONS} actions`, async () => {
    // The location is filled in already: only a name is needed.
    await expect.poll(() => page.getByLabel('Location (folder)').inputValue()).toBe(projectsDir);
    await act('type a project name', () => page.getByLabel('Name').fill('My bowls'));
    await act('create the project', () => page.getByRole('button', { name: 'Create project' }).click());
    await page.getByTestId('project-open').waitFor();

    // No model yet: the Hub panel is open with the recommended starting models.
    const rec = page.getByTestId('hub-recommended');
    await rec.locator(`tr[data-repo="${REPO}"]`).waitFor({ timeout: 30_000 });
    await act('download a recommended model', () => rec.locator(`tr[data-repo="${REPO}"]`).getByRole('button', { name: 'Download' }).click());
    await page.getByTestId('hub-done').waitFor({ timeout: 90_000 });
    await expect.poll(() => page.getByTestId('project-model').textContent(), { timeout: 30_000 }).toContain('SmolLM2-135M-Instruct');

    await act('go to the next step (data)', () => page.getByTestId('next-data').click());
    await act('name the documents folder', () => page.getByLabel('Domain text (one file or folder per line)').fill(documents));
    await act('prepare the dataset', () => page.getByRole('button', { name: 'Prepare dataset' }).click());
    await page.getByTestId('prepare-report').waitFor({ timeout: 90_000 });

    await act('go to the next step (configure)', () => page.getByRole('button', { name: 'configure training' }).click());
    const start = page.getByRole('button', { name: 'Start training' });
    await expect.poll(() => start.isEnabled(), { timeout: 60_000 }).toBe(true);
    await act('start training with the defaults', () => start.click());
    await page.getByTestId('next-after-training').waitFor({ timeout: 300_000 });

    await act('go to the next step (export)', () => page.getByRole('button', { name: 'Next: export the model →' }).click());
    const exportButton = page.getByRole('button', { name: 'Export model' });
    await expect.poll(() => exportButton.isEnabled(), { timeout: 30_000 }).toBe(true);
    await act('export the merged model', () => exportButton.click());
    const verification = page.getByTestId('export-result').getByTestId('verification');
    await verification.waitFor({ timeout: 180_000 });
    expect(await verification.getAttribute('class')).toBe('ok');

    // A merged model on disk, in the project's exports, that other tools open: config + safetensors.
    const exports = path.join(projectsDir, 'My bowls', 'exports');
    expect(existsSync(exports)).toBe(true);
    const out = (await page.getByLabel('Destination folder').inputValue()).trim();
    expect(out.startsWith(exports)).toBe(true);
    expect(existsSync(path.join(out, 'config.json'))).toBe(true);
    const config = JSON.parse(readFileSync(path.join(out, 'config.json'), 'utf8')) as { architectures: string[] };
    expect(config.architectures[0]).toBe('LlamaForCausalLM');

    expect(actions.length, actions.join(' → ')).toBeLessThanOrEqual(MAX_ACTIONS);
    expect(app.errors).toEqual([]);
    await app.shot('newcomer-exported');
  }, 600_000);
});
