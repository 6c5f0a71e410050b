/**
 * End to end through every wizard: the real renderer in Chromium, the real services behind the bridge,
 * on the bundled tiny model and sample corpus: project + model -> corpus import -> tokenizer extension ->
 * LoRA configuration -> a few training steps on the CPU -> dashboard and reopened history -> export (verified)
 * -> chat template.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { Page } from 'playwright-core';
import { openApp, type App } from '../helpers/app';
import { tempDir } from '../helpers/services';

let app: App;
let page: Page;
let projectDir = '';
let pageErrors: string[] = [];
const shot = (name: string) => app.shot(name);

async function nav(label: string): Promise<void> {
  await page.getByRole('navigation', { name: 'Main' }).getByRole('button', { name: label, exact: true }).click();
}

/** Opens the Configure page's advanced settings (collapsed by default). */
async function openAdvanced(): Promise<void> {
  const d = page.getByTestId('advanced');
  if ((await d.getAttribute('open')) === null) await d.locator('summary').click();
}

/** The memory estimate shown on the Configure page, in MB (decimal; shown as MB or GB). */
function shownMB(text: string): number {
  const m = /([\d.,]+)\s*(MB|GB)/.exec(text);
  if (!m) throw new Error(`no size in "${text}"`);
  return Number(m[1]!.replace(/,/g, '')) * (m[2] === 'GB' ? 1000 : 1);
}

/** The Configure page's run length and cadence (only the fields given are filled), on the CPU. */
async function setRun(o: { steps: number; batch: number; accum?: number; warmup?: number; validateEvery: number; checkpointEvery?: number }): Promise<void> {
  await openAdvanced();
  await page.getByLabel('Length').selectOption({ label: 'by steps' });
  await page.getByLabel('Steps', { exact: true }).fill(String(o.steps));
  await page.getByLabel('Batch size (blocks)').fill(String(o.batch));
  if (o.accum !== undefined) await page.getByLabel('Gradient accumulation').fill(String(o.accum));
  if (o.warmup !== undefined) await page.getByLabel('Warmup steps').fill(String(o.warmup));
  await page.getByLabel('Validate every (steps)').fill(String(o.validateEvery));
  if (o.checkpointEvery !== undefined) await page.getByLabel('Checkpoint every (steps)').fill(String(o.checkpointEvery));
  // the device menu offers Lathe's own GPU backend and says why a device is expected
  await page.getByLabel('Device').selectOption({ label: 'GPU (Lathe)' });
  await expect.poll(() => page.getByTestId('device-reason').textContent()).toContain('GPU (Lathe)');
  // precision: bf16 is offered on Lathe's GPU backend only, and nothing but f32 on the CPU
  expect(await page.getByTestId('precision').locator('option[value="bf16"]').isDisabled()).toBe(false);
  await page.getByLabel('Device').selectOption('cpu');
  await expect.poll(() => page.getByTestId('device-reason').textContent()).toContain('CPU, chosen by you');
  expect(await page.getByTestId('precision').isDisabled()).toBe(true);
}

beforeAll(async () => {
  app = await openApp({ width: 1200, height: 860 });
  page = app.page;
  pageErrors = app.errors;
});

afterAll(async () => {
  await app?.close();
});

describe('wizards end to end on the bundled tiny model', () => {
  it('creates a project and checks the bundled model folder', async () => {
    const parent = tempDir('lathe-e2e-wiz-');
    await page.getByLabel('Location (folder)').fill(parent);
    await page.getByLabel('Name').fill('Bowls');
    await page.getByRole('button', { name: 'Create project' }).click();
    await page.getByTestId('project-open').waitFor();
    projectDir = path.join(parent, 'Bowls');

    // A folder that is not a model is refused in plain words, with what to do.
    await page.getByLabel('Model folder').fill(parent);
    await page.getByRole('button', { name: 'Check model' }).click();
    await expect.poll(() => page.getByRole('alert').first().textContent()).toContain('config.json');
    expect(await page.getByRole('alert').first().textContent()).toContain('What to do');

    await page.getByRole('button', { name: 'Use the bundled tiny model' }).click();
    const check = page.getByTestId('model-check');
    await check.waitFor();
    const text = await check.textContent();
    expect(text).toContain('LlamaForCausalLM');
    expect(text).toContain('128,320'); // parameters from config.json
    expect(text).toMatch(/Tokenizer\s*found/);
    expect(text).toMatch(/Chat template\s*found/);
    await page.getByRole('button', { name: 'Use this model' }).click();
    await expect.poll(() => page.getByTestId('project-model').textContent()).toContain('tiny-default');
    const manifest = JSON.parse(readFileSync(path.join(projectDir, 'lathe-project.json'), 'utf8')) as { modelPath: string };
    expect(manifest.modelPath).toContain('tiny-default');
    await shot('wizard-start');
  });

  it('imports and cleans the sample corpus with counts and examples per step', async () => {
    await nav('Data');
    await page.getByRole('button', { name: 'Use the sample corpus' }).click();
    await page.getByLabel('Dataset name').fill('sample');
    await page.getByLabel('Tokens per block').fill('64');
    await page.getByRole('button', { name: 'Prepare dataset' }).click();
    const report = page.getByTestId('prepare-report');
    await report.waitFor({ timeout: 60_000 });
    // The sample corpus has planted duplicates: the dedup steps report removals, with examples.
    const removed = await report.getByTestId('filter-table').first().locator('tr[data-step="exactDedup"] [data-testid="removed"]').textContent();
    expect(Number(removed)).toBeGreaterThan(0);
    expect(await report.getByText(/examples?/).count()).toBeGreaterThan(0);
    const trainTokens = Number((await report.getByTestId('tokens-train').textContent())!.replace(/,/g, ''));
    expect(trainTokens).toBeGreaterThan(10_000);
    expect(existsSync(path.join(projectDir, 'datasets', 'sample', 'manifest.json'))).toBe(true);
    // Raising a quality threshold re-counts by itself (the sample corpus is small) and removes more.
    const qualityRemoved = async () => Number(await report.getByTestId('filter-table').first().locator('tr[data-step="quality"] [data-testid="removed"]').textContent());
    const before = await qualityRemoved();
    await page.getByLabel('Fewest words').fill('120');
    await expect.poll(qualityRemoved, { timeout: 30_000 }).toBeGreaterThan(before + 5);
    await page.getByLabel('Fewest words').fill('15');
    await expect.poll(qualityRemoved, { timeout: 30_000 }).toBe(before);
    await report.locator('details:not([data-testid="import-details"])').first().evaluate((d) => ((d as HTMLDetailsElement).open = true));
    await shot('wizard-corpus');
  });

  it('learns candidate tokens, applies the top ones and charts tokens per word before and after', async () => {
    await nav('Tokenizer');
    await page.getByLabel('Candidates to look for').fill('100');
    await page.getByRole('button', { name: 'Find candidate tokens' }).click();
    await page.getByTestId('candidates').waitFor({ timeout: 60_000 });
    await page.getByLabel('How many tokens to add').fill('40');
    await page.getByRole('button', { name: 'Apply: add 40 tokens' }).click();
    const cmp = page.getByTestId('tokenizer-compare');
    await cmp.waitFor({ timeout: 60_000 });
    // Fewer tokens on domain text after adding domain tokens.
    expect(Number((await cmp.getByTestId('domain-change').textContent())!.replace('%', ''))).toBeLessThan(0);
    expect(existsSync(path.join(projectDir, 'tokenizer', 'extended-40', 'tokenizer.json'))).toBe(true);
    await shot('wizard-tokenizer');
  });

  it('blocks Start over the memory budget with the reason and a one-click fix; warns about a batch bigger than the data', async () => {
    await nav('Configure');
    const plan = page.getByTestId('lora-plan');
    const start = page.getByRole('button', { name: 'Start training' });
    await expect.poll(() => plan.getByTestId('trainable').textContent()).toBe('7,168');
    const mb = shownMB((await plan.getByTestId('memory').textContent())!);
    expect(mb).toBeGreaterThan(0);
    // Far below the estimate (the runtime alone is over it): blocked, and no fix offered.
    await page.getByTestId('budget').fill(String((mb / 1000) * 0.5));
    await expect.poll(() => page.getByTestId('start-blocked').textContent()).toMatch(/smaller model/);
    expect(await page.getByTestId('apply-fix').count()).toBe(0);
    // A little below (3 MB; the shown estimate is rounded to 3 digits): Start is disabled and says why; one click
    // applies the suggested changes.
    await page.getByTestId('budget').fill(String((mb - 3) / 1000));
    await page.getByTestId('apply-fix').waitFor();
    await page.getByTestId('start-blocked').waitFor();
    expect(await page.getByTestId('start-blocked').textContent()).toMatch(/does not fit in memory/);
    expect(await start.isDisabled()).toBe(true);
    await shot('wizard-lora-over-budget');
    await page.getByTestId('apply-fix').click();
    await expect.poll(() => page.getByTestId('start-blocked').count()).toBe(0);
    expect(await start.isDisabled()).toBe(false);
    expect(await page.getByTestId('fit').getAttribute('class')).toContain('ok');
    // A step larger than the whole dataset warns (it does not block).
    await openAdvanced();
    await page.getByLabel('Batch size (blocks)').fill('4000');
    await expect.poll(() => page.getByText(/more than the whole dataset/).count()).toBe(1);
    await shot('wizard-lora-batch-too-big');
    // Back to the defaults for the next test.
    await page.getByTestId('budget').fill('');
    for (const label of [/QLoRA: keep/, /Paged optimizer/]) {
      const box = page.getByLabel(label);
      if (await box.isChecked()) await box.uncheck();
    }
    await page.getByRole('radio', { name: /Quick/ }).click();
    await expect.poll(() => page.getByText(/more than the whole dataset/).count()).toBe(0);
  });

  it('configures LoRA with presets, live parameter count and plain-words validation, then trains a few steps', async () => {
    await nav('Configure');
    const plan = page.getByTestId('lora-plan');
    await expect.poll(() => plan.getByTestId('trainable').textContent()).toBe('7,168'); // Quick: rank 8 on attention
    await page.getByRole('radio', { name: /Balanced/ }).click();
    await expect.poll(() => plan.getByTestId('trainable').textContent()).toBe('32,768'); // rank 16, all linear layers
    expect(await page.getByText(/4 blocks × 4 accumulation × 64 tokens = 1,024 tokens per step/).count()).toBeGreaterThan(0);

    await openAdvanced();
    await page.getByLabel('Rank', { exact: true }).fill('0');
    await expect.poll(() => page.getByText('Rank must be a whole number from 1 to 1024').count()).toBe(1);
    expect(await page.getByRole('button', { name: 'Start training' }).isDisabled()).toBe(true);
    await shot('wizard-lora-invalid');
    await page.getByLabel('Rank', { exact: true }).fill('4');
    await openAdvanced();
    await page.getByLabel('Layers to adapt').selectOption('attention');
    await expect.poll(() => plan.getByTestId('trainable').textContent()).toBe('3,584');

    await setRun({ steps: 8, batch: 2, accum: 1, warmup: 2, validateEvery: 4, checkpointEvery: 4 });
    await page.getByLabel(/Sample prompts/).fill('The gouge');
    await page.getByLabel('Write samples every (steps)').fill('4');
    await shot('wizard-lora');
    await page.getByRole('button', { name: 'Start training' }).click();

    // The dashboard follows the live job; the banner announces the end.
    await page.getByTestId('charts').waitFor();
    await page.getByTestId('banner').waitFor({ timeout: 120_000 });
    expect(await page.getByTestId('banner').textContent()).toContain('Training finished');
    await expect.poll(() => page.getByTestId('stat-step').textContent(), { timeout: 10_000 }).toBe('8');
    await page.getByTestId('checkpoints').waitFor();
    // The sample prompt was answered at the start and every 4 steps.
    await expect.poll(() => page.getByTestId('samples').locator('h3').allTextContents(), { timeout: 10_000 }).toEqual(['Step 8', 'Step 4', 'Step 0']);
    expect(await page.getByTestId('samples').textContent()).toContain('The gouge');
    // where it trained and why (the CPU was chosen in the device menu)
    expect(await page.getByTestId('train-device').textContent()).toMatch(/^Trained on: CPU\. Using CPU as requested: /);
    const runs = readdirSync(path.join(projectDir, 'runs'));
    expect(runs).toHaveLength(1);
    expect(existsSync(path.join(projectDir, 'runs', runs[0]!, 'metrics.jsonl'))).toBe(true);
    await shot('wizard-training');
  });

  it('reopens the finished run from its metrics after a reload', async () => {
    await page.reload();
    await page.getByText('New project').waitFor();
    await page.getByRole('button', { name: 'Bowls' }).click();
    await page.getByTestId('project-open').waitFor();
    await nav('Training');
    await expect.poll(() => page.getByTestId('stat-step').textContent(), { timeout: 10_000 }).toBe('8');
    expect(await page.getByLabel('Run').textContent()).toContain('finished');
    expect(await page.getByTestId('checkpoints').locator('li').count()).toBeGreaterThan(0);
  });

  it('exports the run as a merged model and shows that verification passed', async () => {
    await nav('Export');
    await page.getByLabel('Number format').selectOption('f32');
    await page.getByRole('button', { name: 'Export model' }).click();
    const res = page.getByTestId('export-result');
    await res.waitFor({ timeout: 120_000 });
    expect(await res.getByTestId('verification').textContent()).toContain('Verified');
    const runs = readdirSync(path.join(projectDir, 'runs'));
    const outDir = path.join(projectDir, 'exports', `${runs[0]}-merged`);
    expect(existsSync(path.join(outDir, 'config.json'))).toBe(true);
    expect(readdirSync(outDir).some((f) => f.endsWith('.safetensors'))).toBe(true);
    await shot('wizard-export');
  });

  it('exports the run as GGUF Q8_0, checked by llama.cpp, with the Ollama command', async () => {
    await nav('Export');
    await page.getByLabel('GGUF (llama.cpp, Ollama)').check();
    await page.getByLabel('Size and quality').selectOption('q8_0');
    expect(await page.getByTestId('gguf-quant-note').textContent()).toContain('practically lossless');
    await page.getByRole('button', { name: 'Export model' }).click();
    const res = page.getByTestId('export-result');
    await expect.poll(async () => (await res.count()) > 0 && (await res.textContent())!.includes('llama.cpp'), { timeout: 120_000 }).toBe(true);
    expect(await res.getByTestId('verification').textContent()).toContain('Checked by llama.cpp');
    const runs = readdirSync(path.join(projectDir, 'runs'));
    const outDir = path.join(projectDir, 'exports', `${runs[0]}-gguf`);
    expect(readdirSync(outDir).filter((f) => f.endsWith('.gguf'))).toEqual([expect.stringMatching(/-Q8_0\.gguf$/)]);
    expect(existsSync(path.join(outDir, 'Modelfile'))).toBe(true);
    expect(await res.getByTestId('ollama-create').textContent()).toContain(`-f ${path.join(outDir, 'Modelfile')}`);
    await shot('wizard-export-gguf');
  });

  it('pauses, resumes and stops a run (stop keeps a checkpoint), then resumes the stopped run from it', async () => {
    await nav('Configure');
    await openAdvanced();
    await page.getByLabel('Layers to adapt').selectOption('attention');
    await setRun({ steps: 100000, batch: 2, accum: 1, validateEvery: 0, checkpointEvery: 100000 });
    await page.getByRole('button', { name: 'Start training' }).click();

    const state = page.getByTestId('train-state');
    const step = async () => Number((await page.getByTestId('stat-step').textContent())!.replace(/,/g, '')) || 0;
    await expect.poll(() => state.textContent(), { timeout: 60_000 }).toBe('running');
    await expect.poll(step, { timeout: 60_000 }).toBeGreaterThan(3);
    // No UI freeze while steps stream in: a zero-delay timer on the page fires promptly.
    let worstDelay = 0;
    for (let i = 0; i < 10; i++) {
      const d = await page.evaluate(() => new Promise<number>((r) => { const t = performance.now(); setTimeout(() => r(performance.now() - t), 0); }));
      worstDelay = Math.max(worstDelay, d);
      await new Promise((r) => setTimeout(r, 100));
    }
    console.log(`e2e: worst timer delay on the page during training: ${worstDelay.toFixed(0)} ms`);
    expect(worstDelay).toBeLessThan(500);
    // A reload mid-run finds the live job again (the window is not tied to the training process).
    await page.reload();
    await page.getByRole('button', { name: 'Bowls' }).click();
    await page.getByTestId('project-open').waitFor();
    await nav('Training');
    await expect.poll(() => state.textContent(), { timeout: 10_000 }).toBe('running');
    await page.getByRole('button', { name: 'Pause' }).click();
    await expect.poll(() => state.textContent()).toBe('paused');
    const pausedAt = await step();
    await new Promise((r) => setTimeout(r, 1000));
    expect(await step()).toBeLessThanOrEqual(pausedAt + 1); // at most the step in flight lands
    await page.getByRole('button', { name: 'Resume', exact: true }).click();
    await expect.poll(() => state.textContent()).toBe('running');
    await expect.poll(step).toBeGreaterThan(pausedAt + 1);

    await page.getByRole('button', { name: 'Stop' }).click();
    await expect.poll(() => page.getByTestId('banner').last().textContent(), { timeout: 30_000 }).toContain('stopped');
    const resume = page.getByRole('button', { name: /Resume from step \d+/ });
    await resume.waitFor({ timeout: 10_000 });
    const stoppedAt = Number((await resume.textContent())!.replace(/\D+/g, ''));
    expect(stoppedAt).toBeGreaterThan(pausedAt);
    expect(await page.getByTestId('checkpoints').textContent()).toContain(`step ${stoppedAt}`);
    await shot('wizard-training-stopped');
    await page.getByRole('button', { name: 'Switch light or dark theme' }).click();
    await expect.poll(() => page.evaluate(() => document.documentElement.dataset['theme'])).toBe('dark');
    await shot('wizard-training-dark');
    await page.getByRole('button', { name: 'Switch light or dark theme' }).click();

    // Resuming continues from the checkpoint (not from step 0), then we stop again.
    await resume.click();
    await expect.poll(() => state.textContent(), { timeout: 60_000 }).toBe('running');
    await expect.poll(step, { timeout: 60_000 }).toBeGreaterThan(stoppedAt);
    await page.getByRole('button', { name: 'Stop' }).click();
    await expect.poll(() => page.getByRole('button', { name: /Resume from step \d+/ }).count(), { timeout: 30_000 }).toBe(1);
  });

  it('prepares the corpus with the extended tokenizer, trains its new tokens with QLoRA and dropout, exports them', async () => {
    await nav('Data');
    // The page was reloaded since: the project's corpus paths were remembered.
    expect(await page.getByLabel('Domain text (one file or folder per line)').inputValue()).toMatch(/corpus[\\/]sample$/);
    await page.getByLabel('Tokenizer').selectOption({ label: 'extended: extended-40 (+40 tokens)' });
    await page.getByLabel('Dataset name').fill('sample-ext');
    await page.getByLabel('Tokens per block').fill('64');
    await page.getByRole('button', { name: 'Prepare dataset' }).click();
    await page.getByTestId('prepare-report').waitFor({ timeout: 60_000 });
    const extDir = path.join(projectDir, 'datasets', 'sample-ext');
    await expect.poll(() => existsSync(path.join(extDir, 'manifest.json'))).toBe(true);

    await nav('Configure');
    await page.getByLabel('Prepared dataset').selectOption(extDir);
    await expect.poll(() => page.getByTestId('ext-tokenizer').textContent()).toContain('extended-40');
    await openAdvanced();
    await page.getByLabel('Layers to adapt').selectOption('attention');
    const memory = page.getByTestId('memory');
    await expect.poll(() => memory.textContent()).toMatch(/MB|GB/);
    const full = await memory.textContent();
    await page.getByLabel(/QLoRA/).check();
    await expect.poll(() => memory.textContent()).not.toBe(full);
    await page.getByLabel('Dropout (0 = off)').fill('0.1');
    await setRun({ steps: 4, batch: 2, validateEvery: 2 });
    await shot('wizard-lora-extended');
    await page.getByRole('button', { name: 'Start training' }).click();
    await page.getByTestId('banner').filter({ hasText: 'Training finished' }).waitFor({ timeout: 120_000 });
    await expect.poll(() => page.getByTestId('stat-step').textContent(), { timeout: 10_000 }).toBe('4');
    const run = readdirSync(path.join(projectDir, 'runs')).sort().at(-1)!;
    const cfg = JSON.parse(readFileSync(path.join(projectDir, 'runs', run, 'config.json'), 'utf8')) as { quantization: string; tokenizer: string; lora: { dropout: number } };
    expect(cfg.quantization).toBe('nf4');
    expect(cfg.tokenizer).toBe(path.join(projectDir, 'tokenizer', 'extended-40'));
    expect(cfg.lora.dropout).toBe(0.1);

    // The merged export carries the grown vocabulary and the extended tokenizer, and still verifies.
    await nav('Export');
    await page.getByLabel('Number format').selectOption('f32');
    await page.getByRole('button', { name: 'Export model' }).click();
    const res = page.getByTestId('export-result');
    await res.waitFor({ timeout: 120_000 });
    expect(await res.getByTestId('verification').textContent()).toContain('Verified');
    const exported = JSON.parse(readFileSync(path.join(projectDir, 'exports', `${run}-merged`, 'config.json'), 'utf8')) as { vocab_size: number };
    expect(exported.vocab_size).toBe(464);
  });

  it('previews the chat template as text and tokens with the training mask, switches built-ins, shows lint', async () => {
    await nav('Chat template');
    const out = page.getByTestId('template-output');
    await out.waitFor();
    await expect.poll(() => out.getByTestId('rendered').textContent()).toContain('<|im_start|>assistant');
    expect(await out.locator('.tok.train').count()).toBeGreaterThan(5);
    expect(await out.locator('.tok.special').count()).toBeGreaterThan(3);
    await shot('wizard-template');

    await page.getByLabel('Template', { exact: true }).selectOption('llama3');
    await expect.poll(() => out.getByTestId('rendered').textContent()).toContain('<|start_header_id|>');
    // The tiny model's tokenizer does not know Llama 3's special tokens: the linter says so.
    await expect.poll(() => page.getByTestId('lint').textContent()).toMatch(/error|warning/);

    // Editing the source re-renders; a broken template is reported, not thrown.
    await page.getByLabel('Template source').fill('{% for m in messages %}{{ m.content }}');
    await expect.poll(() => page.getByRole('alert').first().textContent()).toContain('does not render');
    expect(pageErrors).toEqual([]);
  });

  it('can be driven from the keyboard, with a visible focus ring', async () => {
    await page.getByRole('navigation', { name: 'Main' }).getByRole('button', { name: 'Projects' }).focus();
    await page.keyboard.press('Tab'); // -> Data
    const focused = await page.evaluate(() => {
      const el = document.activeElement as HTMLElement;
      const cs = getComputedStyle(el);
      return { text: el.textContent, outline: cs.outlineStyle, width: parseFloat(cs.outlineWidth) };
    });
    expect(focused.text).toBe('Data');
    expect(focused.outline).not.toBe('none');
    expect(focused.width).toBeGreaterThanOrEqual(2);
    await page.keyboard.press('Enter');
    await page.getByRole('heading', { name: '1 · Import your text' }).waitFor();
    expect(pageErrors).toEqual([]);
  });

  it('prepares conversations for chat fine-tuning through the model\'s own template', async () => {
    const dir = tempDir('lathe-e2e-chats-');
    const file = path.join(dir, 'chats.jsonl');
    const rows = Array.from({ length: 30 }, (_, i) => JSON.stringify({ messages: [
      { role: 'user', content: `Which gouge for bowl number ${i}?` },
      { role: 'assistant', content: `A bowl gouge with a swept-back grind for bowl ${i}; write to me at turner${i}@example.com.` },
    ] }));
    rows.push(JSON.stringify({ instruction: 'Name a finish for bowls.', output: 'Walnut oil.' }));
    writeFileSync(file, rows.join('\n') + '\n');
    await nav('Data');
    await page.getByTestId('mode-sft').check();
    await page.getByTestId('sft-clean-note').waitFor();
    expect(await page.getByLabel('Fewest words').count()).toBe(0); // steps that do not apply to conversations are hidden
    await page.getByLabel('Conversation files (one per line)').fill(file);
    await page.getByLabel('Dataset name').fill('chats');
    await page.getByLabel('Tokens per block').fill('128');
    await page.getByRole('button', { name: /Prepare/ }).click();
    const report = page.getByTestId('prepare-report');
    await expect.poll(() => report.getByTestId('sft-formats').textContent().catch(() => ''), { timeout: 60_000 }).toMatch(/30 openai.*1 alpaca|1 alpaca.*30 openai/);
    expect(Number((await report.getByTestId('tokens-train').textContent())!.replace(/,/g, ''))).toBeGreaterThan(500);
    const manifest = JSON.parse(readFileSync(path.join(projectDir, 'datasets', 'chats', 'manifest.json'), 'utf8')) as { kind: string };
    expect(manifest.kind).toBe('sft');
    const rep = JSON.parse(readFileSync(path.join(projectDir, 'datasets', 'chats', 'report.json'), 'utf8')) as { corpora: { domain: { pii: { email: number } } } };
    expect(rep.corpora.domain.pii.email).toBe(30);
    expect(await report.locator('tr[data-step="pii"]').textContent()).toMatch(/example/);
    await shot('wizard-corpus-sft');
    expect(pageErrors).toEqual([]);
  });
  it('walks preference pairs -> DPO run -> export: reward charts on the dashboard, the method in the model card', async () => {
    const dir = tempDir('lathe-e2e-pairs-');
    const file = path.join(dir, 'pairs.jsonl');
    const rows = Array.from({ length: 24 }, (_, i) => JSON.stringify({ prompt: `How fast should bowl ${i} spin?`, chosen: `Start slow, near ${500 + i} rpm, and speed up once it runs true.`, rejected: `As fast as it goes ${i}!` }));
    rows.push(JSON.stringify({ prompt: 'Same?', chosen: 'Yes.', rejected: 'Yes.' }));
    writeFileSync(file, rows.join('\n') + '\n');
    await nav('Data');
    await page.getByTestId('mode-preference').check();
    await page.getByTestId('preference-paths').fill(file);
    await page.getByLabel('Dataset name').fill('pairs');
    await page.getByLabel('Tokens per block').fill('64');
    await page.getByRole('button', { name: /Prepare/ }).click();
    const report = page.getByTestId('prepare-report');
    await expect.poll(() => report.getByTestId('preference-formats').textContent().catch(() => ''), { timeout: 60_000 }).toMatch(/^2[0-9] trl-standard$/);
    expect(await report.getByTestId('preference-skipped').textContent()).toBe('1');
    expect(await report.locator('tr[data-step="pairs"]').textContent()).toMatch(/identical 1/);
    const dsDir = path.join(projectDir, 'datasets', 'pairs');
    expect((JSON.parse(readFileSync(path.join(dsDir, 'manifest.json'), 'utf8')) as { kind: string }).kind).toBe('preference');
    await shot('wizard-corpus-preference');

    await nav('Configure');
    await page.getByLabel('Prepared dataset').selectOption(dsDir);
    const pref = page.getByTestId('preference');
    await pref.waitFor();
    await pref.getByRole('radio', { name: /DPO \(β 0\.1\)/ }).click();
    expect(await page.getByTestId('pref-method').inputValue()).toBe('dpo');
    await page.getByTestId('pref-beta').fill('0.5');
    await openAdvanced();
    await page.getByLabel('Length').selectOption({ label: 'by steps' });
    await page.getByLabel('Steps', { exact: true }).fill('4');
    await page.getByLabel('Batch size (pairs)').fill('2');
    await page.getByLabel('Gradient accumulation').fill('1');
    await page.getByLabel('Learning rate').fill('0.005');
    await page.getByLabel('Validate every (steps)').fill('2');
    await page.getByLabel('Device').selectOption('cpu');
    await shot('wizard-lora-preference');
    const before = readdirSync(path.join(projectDir, 'runs')).length;
    await page.getByRole('button', { name: 'Start training' }).click();
    await page.getByTestId('reward-chart').waitFor({ timeout: 120_000 });
    await expect.poll(() => page.getByTestId('stat-step').textContent(), { timeout: 120_000 }).toBe('4');
    expect(await page.getByTestId('stat-reward-accuracy').textContent()).toMatch(/^[01]\.?\d*$/);
    const runs = readdirSync(path.join(projectDir, 'runs')).sort();
    expect(runs).toHaveLength(before + 1);
    const runDir = path.join(projectDir, 'runs', runs.at(-1)!);
    const cfg = JSON.parse(readFileSync(path.join(runDir, 'config.json'), 'utf8')) as { method: string; preference: { beta: number } };
    expect(cfg.method).toBe('dpo');
    expect(cfg.preference.beta).toBe(0.5);
    await expect.poll(() => existsSync(path.join(runDir, 'summary.json')), { timeout: 60_000 }).toBe(true);
    await shot('wizard-training-preference');

    await nav('Export');
    await page.getByLabel('Training run').selectOption(runDir);
    await page.getByLabel('Adapter only (PEFT)').check();
    await page.getByRole('button', { name: 'Export model' }).click();
    await page.getByTestId('export-result').waitFor({ timeout: 120_000 });
    const card = readFileSync(path.join(projectDir, 'exports', `${runs.at(-1)}-peft`, 'README.md'), 'utf8');
    expect(card).toContain('- Method: DPO (sigmoid loss), β 0.5');

    // the Chat template page shows a preference side's mask: only the last reply is scored
    await nav('Chat template');
    const tokens = page.getByTestId('template-output');
    await tokens.getByTestId('tokens').waitFor({ timeout: 30_000 });
    const trained = async () => Number(/(\d+) learned from/.exec((await tokens.locator('h3').first().textContent()) ?? '')?.[1]);
    const all = await trained();
    await page.getByTestId('pair-mode').check();
    await expect.poll(trained).toBeLessThan(all);
    expect(await trained()).toBeGreaterThan(0);
    expect(pageErrors).toEqual([]);
  });
});
