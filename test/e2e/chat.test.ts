/**
 * Trying the model in the app (issue 22 item 1), in Chromium through the bridge: a tiny run of the bundled
 * model (trained here on the CPU, with sample prompts) -> the dashboard shows what the model writes and leads
 * to Chat -> a streamed reply from the fine-tuned run -> side by side (base vs fine-tuned, different answers)
 * -> the evaluation report page with its verdicts.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { Page } from 'playwright-core';
import { openApp, type App } from '../helpers/app';
import { tempDir } from '../helpers/services';
import { bundledResources } from '../../src-main/services/resources';
import { expectedDevice } from '../../src-main/services/device';
import { execFile } from 'node:child_process';

let app: App;
let page: Page;
let projectDir = '';

async function nav(label: string): Promise<void> {
  await page.getByRole('navigation', { name: 'Main' }).getByRole('button', { name: label, exact: true }).click();
}

/** Word salad corpora: domain (woodturning words) and general text, so the report has both held-out sets. */
function corpus(dir: string, words: string[], docs: number, seed: number): string {
  mkdirSync(dir, { recursive: true });
  let x = seed;
  const next = () => { x = (x * 1103515245 + 12345) % 2 ** 31; return x / 2 ** 31; };
  for (let d = 0; d < docs; d++) writeFileSync(path.join(dir, `doc${d}.txt`), Array.from({ length: 200 }, () => words[Math.floor(next() * words.length)]).join(' ') + '.\n');
  return dir;
}

/** The `lathe` CLI in its own process (engine code stays out of this test's process and its type check). */
function lathe(...args: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile(process.execPath, ['bin/lathe.mjs', ...args, '--json'], { maxBuffer: 64 << 20 }, (err, _out, stderr) => {
      if (err) reject(new Error(`lathe ${args.join(' ')}: ${err.message}\n${stderr.slice(-2000)}`));
      else resolve();
    });
  });
}

beforeAll(async () => {
  app = await openApp({ width: 1200, height: 900 });
  page = app.page;
}, 120_000);

afterAll(async () => {
  await app?.close();
});

describe('try it: chat, side by side and the evaluation report', () => {
  it('trains a tiny run whose samples show on the dashboard, with a way to Chat', async () => {
    const parent = tempDir('lathe-e2e-chat-');
    await page.getByLabel('Location (folder)').fill(parent);
    await page.getByLabel('Name').fill('Bowls');
    await page.getByRole('button', { name: 'Create project' }).click();
    await page.getByTestId('project-open').waitFor();
    projectDir = path.join(parent, 'Bowls');
    await page.getByRole('button', { name: 'Use the bundled tiny model' }).click();
    await page.getByTestId('model-check').waitFor();
    await page.getByRole('button', { name: 'Use this model' }).click();
    await expect.poll(() => page.getByTestId('project-model').textContent()).toContain('tiny-default');

    // The run itself is trained here (the Configure wizard is covered by wizards.test.ts); it lands in the project.
    const model = bundledResources().tinyModel;
    const src = tempDir('lathe-e2e-chat-corpus-');
    const dataset = path.join(projectDir, 'datasets', 'tiny');
    await lathe('prepare', corpus(path.join(src, 'domain'), 'the lathe spins the blank while the gouge cuts a clean bevel along the grain of maple and walnut'.split(' '), 16, 3),
      '--general', corpus(path.join(src, 'general'), 'people walk to the market on sunday morning and buy bread with friends in town'.split(' '), 20, 5),
      '--out', dataset, '--tokenizer', model, '--block-size', '32', '--val-fraction', '0.15', '--seed', '1');
    const config = path.join(src, 'train.json');
    writeFileSync(config, JSON.stringify({
      model, dataset, out: path.join(projectDir, 'runs', 'run-1'), maxSteps: 12, batchSize: 2, optim: { lr: 2e-2 }, evalEvery: 6, ep: 'cpu',
      samplePrompts: ['The gouge'], sampleEvery: 6, sampleMaxTokens: 12,
    }));
    await lathe('train', '--config', config);

    await nav('Training');
    await page.getByTestId('samples').waitFor({ timeout: 30_000 });
    expect(await page.getByTestId('samples').textContent()).toContain('The gouge');
    await page.getByRole('button', { name: 'Try it in Chat' }).click();
    await page.getByRole('heading', { name: 'Chat' }).waitFor();
    expect(await page.getByTestId('chat-source').inputValue()).toContain('run-1');
  }, 300_000);

  it('streams a reply from the fine-tuned run', async () => {
    await page.getByText('Settings: creativity, length, instructions').click();
    await page.getByLabel('Length limit (tokens)').fill('200');
    await page.getByRole('textbox', { name: 'Message', exact: true }).fill('How do I sharpen a bowl gouge?');
    await page.getByRole('button', { name: 'Send', exact: true }).click();
    // Tokens appear while the job still runs (the streaming bubble), then the reply stays in the conversation.
    await expect.poll(async () => {
      const s = page.getByTestId('msg-streaming');
      return (await s.count()) ? ((await s.textContent()) ?? '').replace(/^Fine-tuned|▍$/g, '').length : 0;
    }, { timeout: 90_000, interval: 50 }).toBeGreaterThan(0);
    await page.getByTestId('msg-model').waitFor({ timeout: 90_000 });
    expect(await page.getByTestId('msg-user').textContent()).toContain('How do I sharpen a bowl gouge?');
    expect(((await page.getByTestId('msg-model').textContent()) ?? '').length).toBeGreaterThan('Fine-tuned'.length);
    await app.shot('chat');
  }, 200_000);

  it('answers on Lathe\'s GPU backend when "GPU (Lathe)" is picked, and says where it ran and why', async () => {
    // automatic first: the menu says what it will use, and why (this machine: no GPU device node -> the CPU)
    await expect.poll(() => page.getByTestId('chat-device-reason').textContent()).toBe(expectedDevice('auto').reason);
    // the previous reply ran automatically: where, and why, beside the menu
    expect(await page.getByTestId('chat-device-used').textContent()).toMatch(/^Last ran on: (CPU|GPU \(Lathe\))\. Automatic: /);
    await page.getByTestId('chat-device').selectOption('gpu');
    await expect.poll(() => page.getByTestId('chat-device-reason').textContent()).toBe('GPU (Lathe): Lathe\'s own GPU kernels, chosen by you.');
    await page.getByRole('button', { name: 'New chat' }).click();
    await page.getByLabel('Length limit (tokens)').fill('8');
    await page.getByRole('textbox', { name: 'Message', exact: true }).fill('the lathe spins the');
    await page.getByRole('button', { name: 'Send', exact: true }).click();
    await page.getByTestId('msg-model').waitFor({ timeout: 240_000 });
    expect(await page.getByTestId('msg-model').textContent()).toMatch(/tokens\/s, on the GPU \(Lathe\)/);
    expect(await page.getByTestId('chat-device-used').textContent()).toMatch(/^Last ran on: GPU \(Lathe\)\. Using Lathe's GPU backend as requested: GPU: /);
    expect(app.errors).toEqual([]);
    await app.shot('chat-gpu');
    await page.getByTestId('chat-device').selectOption('auto');
  }, 300_000);

  it('answers side by side with the base model and the fine-tuned one', async () => {
    await page.getByRole('button', { name: 'New chat' }).click();
    await page.getByTestId('compare').check();
    await page.getByLabel('Always pick the most likely word (the same answer every time)').check();
    await page.getByLabel('Length limit (tokens)').fill('24');
    await page.getByRole('textbox', { name: 'Message', exact: true }).fill('the lathe spins the');
    await page.getByRole('button', { name: 'Send', exact: true }).click();
    await page.getByTestId('answer-tuned').waitFor({ timeout: 30_000 });
    await page.locator('[data-testid="conversation"][data-busy="false"]').waitFor({ timeout: 90_000 }); // the job ended
    const base = (await page.getByTestId('answer-base').textContent())!.replace('Base model (before training)', '');
    const tuned = (await page.getByTestId('answer-tuned').textContent())!.replace('Fine-tuned', '');
    expect(base.length + tuned.length).toBeGreaterThan(0);
    expect(tuned).not.toBe(base);
    expect(app.errors).toEqual([]);
    await app.shot('chat-side-by-side');
  }, 200_000);

  it('makes the evaluation report and shows the verdicts', async () => {
    await nav('Evaluation');
    await page.getByTestId('no-report').waitFor();
    // the device menu and its reason beside it, before and after the job
    expect(await page.getByTestId('eval-device').inputValue()).toBe('auto');
    await expect.poll(() => page.getByTestId('eval-device-reason').textContent()).toBe(expectedDevice('auto').reason);
    await page.getByRole('button', { name: 'Make the evaluation report' }).click();
    const report = page.getByTestId('eval-report');
    await report.waitFor({ timeout: 180_000 });
    expect(await page.getByTestId('eval-device-used').textContent()).toMatch(/^Last ran on: (CPU|GPU \(Lathe\))\. Automatic: (CPU, because|Using Lathe's GPU backend)/);
    expect(await page.getByTestId('verdict-learning').textContent()).toMatch(/Your domain text (got [\d.]+% easier|did not get easier)/);
    expect(await page.getByTestId('verdict-forgetting').textContent()).toMatch(/General text got/);
    const rows = page.getByTestId('ppl-table').locator('tbody tr');
    expect(await rows.count()).toBe(2);
    expect(await page.getByTestId('eval-generations').textContent()).toContain('The gouge');
    expect(app.errors).toEqual([]);
    await app.shot('eval-report');
  }, 240_000);

  it('chats with the exported GGUF file from Export ("Chat with it"), through llama.cpp', async () => {
    await nav('Export');
    await page.getByLabel('GGUF (llama.cpp, Ollama)').check();
    await page.getByLabel('Size and quality').selectOption('q8_0');
    await page.getByRole('button', { name: 'Export model' }).click();
    const res = page.getByTestId('export-result');
    await res.waitFor({ timeout: 180_000 });
    await res.getByRole('button', { name: 'Chat with it' }).click();
    await page.getByRole('heading', { name: 'Chat' }).waitFor();
    expect(await page.getByTestId('chat-source').inputValue()).toMatch(/^gguf:.*-Q8_0\.gguf$/);
    await page.getByRole('button', { name: 'New chat' }).click();
    await page.getByRole('textbox', { name: 'Message', exact: true }).fill('the lathe spins the');
    await page.getByRole('button', { name: 'Send', exact: true }).click();
    await page.getByTestId('msg-model').waitFor({ timeout: 120_000 });
    expect(await page.getByTestId('msg-model').textContent()).toContain('GGUF file');
    expect(app.errors).toEqual([]);
  }, 300_000);
});
