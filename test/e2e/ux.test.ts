/**
 * Issue 22 items 3-5 and the app buttons of issues 21 and 19, in Chromium through the bridge: the bridge's
 * folder picker, greyed-out buttons that say why, the time estimate before Start, the hand-off folder, an
 * adapter imported as a run, and "Register with Ollama" (a stand-in `ollama` on the PATH) after a GGUF export.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chmodSync, existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { Page } from 'playwright-core';
import { openApp, type App } from '../helpers/app';
import { tempDir } from '../helpers/services';
import { exportModel } from '../../src-main/export';
import { handRun } from '../unit/export/helpers';

let app: App;
let page: Page;
let projectDir = '';
const shot = (name: string) => app.shot(name);
const nav = (label: string) => page.getByRole('navigation', { name: 'Main' }).getByRole('button', { name: label, exact: true }).click();

// A stand-in `ollama` first on the PATH of the bridge (this process): records what it was asked to run.
const fakeBin = tempDir('lathe-e2e-ollama-');
const ollamaLog = path.join(fakeBin, 'calls.txt');
writeFileSync(path.join(fakeBin, 'ollama'), `#!/bin/sh\necho "$*" >> '${ollamaLog}'\necho success\n`);
chmodSync(path.join(fakeBin, 'ollama'), 0o755);
const oldPath = process.env['PATH'];

beforeAll(async () => {
  process.env['PATH'] = `${fakeBin}${path.delimiter}${oldPath ?? ''}`;
  app = await openApp({ width: 1200, height: 860 });
  page = app.page;
});

afterAll(async () => {
  process.env['PATH'] = oldPath;
  await app?.close();
});

describe('pickers, estimates, hand-off and import in the app', () => {
  it('Create project says why it is greyed out; the bridge picker chooses the folder', async () => {
    const parent = tempDir('lathe-e2e-ux-');
    mkdirSync(path.join(parent, 'projects'));
    const create = page.getByRole('button', { name: 'Create project' });
    // The location comes filled in ("Lathe projects" in the home folder); emptied, Create says what is missing.
    await expect.poll(() => page.getByLabel('Location (folder)').inputValue()).not.toBe('');
    expect(await page.getByTestId('disabled-reason').first().textContent()).toBe('Type a name first.');
    await page.getByLabel('Location (folder)').fill('');
    expect(await create.isDisabled()).toBe(true);
    expect(await page.getByTestId('disabled-reason').first().textContent()).toBe('Choose a location first.');
    await shot('disabled-reason');

    await page.getByTestId('project-location-browse').click();
    const dialog = page.getByTestId('file-dialog');
    await dialog.waitFor();
    // Start places are listed; the secret and system places never are.
    await expect.poll(() => dialog.getByRole('button', { name: 'Home' }).count()).toBe(1);
    await dialog.getByRole('button', { name: 'Computer' }).click();
    const list = dialog.getByTestId('picker-list');
    await expect.poll(() => list.getByRole('option').count()).toBeGreaterThan(0);
    const names = await list.getByRole('option').allTextContents();
    for (const sys of ['etc', 'proc', 'sys', 'dev']) expect(names.map((n) => n.trim())).not.toContain(`📁 ${sys}`);
    // The root itself cannot be chosen, and the dialog says why.
    expect(await dialog.getByTestId('picker-choose').isDisabled()).toBe(true);
    expect(await dialog.getByTestId('disabled-reason').textContent()).toMatch(/open a folder inside it/);
    // Go to the parent by typing, then into "projects" by a click, and choose it.
    await dialog.getByLabel('Folder path').fill(parent);
    await dialog.getByRole('button', { name: 'Go', exact: true }).click();
    await list.getByRole('option', { name: /projects/ }).click();
    await expect.poll(() => dialog.getByText(`Chosen: ${path.join(parent, 'projects')}`).count()).toBe(1);
    await shot('picker');
    await dialog.getByTestId('picker-choose').click();
    await expect.poll(() => page.getByTestId('project-location').inputValue()).toBe(path.join(parent, 'projects'));
    // Name still missing: the reason changes.
    expect(await page.getByTestId('disabled-reason').first().textContent()).toBe('Type a name first.');
    await page.getByTestId('project-name').fill('Spoons');
    expect(await create.isDisabled()).toBe(false);
    await create.click();
    await page.getByTestId('project-open').waitFor();
    projectDir = path.join(parent, 'projects', 'Spoons');

    // The chosen folder is now a recent folder in the picker.
    await page.getByTestId('model-path-browse').click();
    await expect.poll(() => page.getByTestId('file-dialog').getByRole('button', { name: 'projects' }).count()).toBe(1);
    await page.getByTestId('file-dialog').getByRole('button', { name: 'Cancel' }).click();

    // A drop from a plain browser gives only a name: the field says so.
    await page.getByTestId('model-path').evaluate((input) => {
      const dt = new DataTransfer();
      dt.items.add(new File(['x'], 'SmolLM2-135M'));
      input.closest('.pathfield')!.dispatchEvent(new DragEvent('drop', { dataTransfer: dt, bubbles: true, cancelable: true }));
    });
    await expect.poll(() => page.getByRole('status').filter({ hasText: 'only tells Lathe the name' }).count()).toBe(1);

    await page.getByRole('button', { name: 'Use the bundled tiny model' }).click();
    await page.getByTestId('model-check').waitFor();
    await page.getByRole('button', { name: 'Use this model' }).click();
    await page.getByTestId('next-data').click(); // next step after choosing a model
    await page.getByRole('heading', { name: '1 · Import your text' }).waitFor();
  });

  it('prepares the sample corpus, then shows a time estimate before Start', async () => {
    await page.getByRole('button', { name: 'Use the sample corpus' }).click();
    await page.getByLabel('Dataset name').fill('sample');
    await page.getByLabel('Tokens per block').fill('64');
    await page.getByRole('button', { name: 'Prepare dataset' }).click();
    await page.getByTestId('prepare-report').waitFor({ timeout: 120_000 });

    await nav('Configure');
    expect(await page.getByTestId('advanced').getAttribute('open')).toBeNull(); // collapsed by default
    await page.getByTestId('advanced').locator('summary').click();
    await page.getByLabel('Length').selectOption({ label: 'by steps' });
    await page.getByLabel('Steps', { exact: true }).fill('40');
    await page.getByLabel('Batch size (blocks)').fill('2');
    await page.getByLabel('Validate every (steps)').fill('10');
    await page.getByLabel('Device').selectOption('cpu');
    // Values changed away from the preset: it is no longer highlighted.
    await expect.poll(() => page.getByTestId('preset-quick').getAttribute('aria-checked')).toBe('false');
    await page.getByTestId('advanced').locator('summary').click();
    await page.getByTestId('estimate-button').click();
    const text = page.getByTestId('estimate-text');
    await text.waitFor({ timeout: 120_000 });
    expect(await text.textContent()).toMatch(/about \d+ (s|min).* on the CPU.*per step \(40 steps/s);
    // The estimate is there before anything trained: no run folder yet.
    const runs = path.join(projectDir, 'runs');
    expect(existsSync(runs) ? readdirSync(runs) : []).toEqual([]);
    expect(await page.getByRole('button', { name: 'Start training' }).isDisabled()).toBe(false);
    await page.getByTestId('estimate').scrollIntoViewIfNeeded();
    await shot('configure-estimate');
  });

  it('"Run on bigger hardware" writes a hand-off job folder and lists what does not carry over', async () => {
    await page.getByTestId('handoff').locator('summary').click();
    await page.getByTestId('handoff-target').selectOption('accelerate');
    await page.getByTestId('handoff-gpus').fill('4');
    const out = path.join(tempDir('lathe-e2e-handoff-'), 'job');
    await page.getByTestId('handoff-out').fill(out);
    await page.getByTestId('handoff-create').click();
    const res = page.getByTestId('handoff-result');
    await res.waitFor({ timeout: 120_000 });
    expect(await res.textContent()).toContain(out);
    for (const f of ['train.py', 'README.md', 'launch/slurm.sbatch']) expect(existsSync(path.join(out, f)), f).toBe(true);
    expect(readdirSync(path.join(out, 'data')).some((f) => f.endsWith('.parquet'))).toBe(true);
    expect(await res.getByTestId('handoff-warnings').textContent()).toContain('maxBadSteps');
    await page.getByTestId('handoff').scrollIntoViewIfNeeded();
    await shot('handoff');
  });

  it('"Import adapter" turns a PEFT adapter into a run', async () => {
    // A PEFT adapter for the bundled tiny model, made outside the app (as a cluster would).
    const model = JSON.parse(readFileSync(path.join(projectDir, 'lathe-project.json'), 'utf8')).modelPath as string;
    const run = path.join(tempDir('lathe-e2e-peft-run-'), 'run');
    mkdirSync(run, { recursive: true });
    await handRun(model, run, { targets: 'attention' });
    const adapter = path.join(tempDir('lathe-e2e-peft-'), 'adapter');
    await exportModel({ format: 'peft', model, adapter: run, out: adapter, baseModelName: 'org/tiny' });

    await nav('Export');
    const imp = page.getByTestId('import-adapter');
    await imp.locator('summary').click();
    expect(await imp.getByTestId('disabled-reason').textContent()).toMatch(/Choose the adapter folder first/);
    await imp.getByTestId('adapter-path').fill(adapter);
    await imp.getByTestId('import-name').fill('from-cluster');
    await imp.getByTestId('import-button').click();
    await imp.getByTestId('import-done').waitFor({ timeout: 120_000 });
    expect(existsSync(path.join(projectDir, 'runs', 'from-cluster', 'config.json'))).toBe(true);
    await expect.poll(() => page.getByLabel('Training run').inputValue()).toBe(path.join(projectDir, 'runs', 'from-cluster'));
    await shot('import-adapter');
  });

  it('after a GGUF export, "Register with Ollama" runs exactly the shown command (a stand-in ollama on the PATH)', async () => {
    await page.getByLabel('GGUF (llama.cpp, Ollama)').check();
    // llama.cpp's check is the GGUF tests' business (test/unit/export/gguf); here only the button matters.
    await page.getByLabel(/Check the export/).uncheck();
    await page.getByLabel('Size and quality').selectOption('f16');
    await page.getByRole('button', { name: 'Export model' }).click();
    const result = page.getByTestId('export-result');
    await result.waitFor({ timeout: 240_000 });
    const command = (await result.getByTestId('ollama-create').textContent())!;
    await result.getByTestId('ollama-register').click();
    await result.getByTestId('ollama-done').waitFor({ timeout: 30_000 });
    expect(`ollama ${readFileSync(ollamaLog, 'utf8').trim()}`).toBe(command);
    await result.scrollIntoViewIfNeeded();
    await shot('export-ollama');
  }, 300_000);
});
