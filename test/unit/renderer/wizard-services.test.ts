/** The channels behind the wizards, called through `dispatch` as the renderer calls them. */
import { describe, expect, it, beforeAll } from 'vitest';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { dispatch, type Services } from '../../../src-main/services';
import { MetricsLog } from '../../../src-main/engine/train/metrics';
import { readModelConfig } from '../../../src-main/engine/models';
import { prepareCorpus } from '../../../src-main/data/prepare';
import { tempDir, testServices } from '../../helpers/services';
import { hasGpuDevice } from '../../../src-main/engine/backends/webgpu/choose';

let s: Services;
let res: { tinyModel: string; domainCorpus: string; generalCorpus: string };

async function call<T>(channel: string, payload: unknown): Promise<T> {
  const env = await dispatch(s, channel, payload);
  if (!env.ok) throw new Error(`${env.error.code}: ${env.error.message}`);
  return env.value as T;
}

/** A project made through the contract, as the window makes one (paths are confined to chosen folders). */
async function newProject(prefix: string): Promise<string> {
  return (await call<{ path: string }>('projects.create', { parentDir: tempDir(prefix), name: 'p' })).path;
}

beforeAll(async () => {
  s = testServices();
  res = await call('app.resources', {});
});

describe('wizard channels', () => {
  it('models.inspect describes the bundled model and refuses a folder without config.json in plain words', async () => {
    const m = await call<{ architecture: string; parameters: number; dtype: string; tokenizer: { found: boolean }; chatTemplate: { found: boolean }; problems: unknown[] }>('models.inspect', { path: res.tinyModel });
    expect(m.architecture).toBe('LlamaForCausalLM');
    expect(m.parameters).toBe(128_320);
    expect(m.dtype).toBe('F32');
    expect(m.tokenizer.found).toBe(true);
    expect(m.chatTemplate.found).toBe(true);
    expect(m.problems).toEqual([]);
    const env = await dispatch(s, 'models.inspect', { path: tempDir() });
    expect(env.ok).toBe(false);
    if (!env.ok) {
      expect(env.error.message).toMatch(/config\.json/);
      expect(env.error.hint).toBeTruthy();
    }
  });

  it('lora.plan counts trainable parameters as rank × (in + out) over the targeted layers', async () => {
    const c = await readModelConfig(res.tinyModel);
    const C = c.hiddenSize, q = c.numHeads * c.headDim, kv = c.numKvHeads * c.headDim, F = c.intermediateSize;
    const attention = (C + q) + 2 * (C + kv) + (q + C); // q, k, v, o
    const mlp = 3 * (C + F); // gate, up, down
    for (const [targets, rank, per] of [['attention', 8, attention], ['all-linear', 16, attention + mlp], ['mlp', 4, mlp]] as const) {
      const p = await call<{ trainableParams: number; modelParams: number }>('lora.plan', { model: res.tinyModel, dataset: null, rank, targets, batchSize: 4, gradAccum: 1, epochs: 1, maxSteps: null });
      expect(p.trainableParams).toBe(rank * per * c.numLayers);
      expect(p.modelParams).toBe(128_320);
    }
  });

  it('lora.plan names the device a run is expected to train on and why (the device menu shows it)', async () => {
    const req = { model: res.tinyModel, dataset: null, rank: 8, targets: 'attention', batchSize: 4, gradAccum: 1, epochs: 1, maxSteps: null };
    type Dev = { device: { device: string; reason: string }; memory: { ep: string } };
    const gpu = await call<Dev>('lora.plan', { ...req, ep: 'gpu' });
    expect(gpu.device).toEqual({ device: 'gpu', reason: expect.stringMatching(/GPU \(Lathe\)/) });
    expect(gpu.memory.ep).toBe('webgpu');
    const auto = await call<Dev>('lora.plan', { ...req, ep: 'auto' });
    expect(auto.device.reason).toMatch(hasGpuDevice() ? /Automatic: GPU \(Lathe\), because a GPU was found/ : /Automatic: CPU, because no GPU was found/);
    const paged = await call<Dev>('lora.plan', { ...req, ep: 'gpu', pagedOptimizer: true });
    expect(paged.device).toEqual({ device: 'gpu', reason: expect.stringMatching(/GPU \(Lathe\)/) }); // the backend pages AdamW's moments too
  });

  it('lora.plan warns before a run that will not fit the memory budget and says what makes it fit', async () => {
    type Fit = { fit: { fits: boolean; message: string; changes: string[] } | null; memoryMB: number };
    const req = { model: res.tinyModel, dataset: null, rank: 8, targets: 'all-linear', batchSize: 64, gradAccum: 1, epochs: 1, maxSteps: null, ep: 'webgpu' };
    const none = await call<Fit>('lora.plan', req);
    expect(none.fit).toBeNull(); // a GPU without a stated budget: no guess
    const big = await call<Fit>('lora.plan', { ...req, budgetGB: 64 });
    expect(big.fit!.fits).toBe(true);
    const small = await call<Fit>('lora.plan', { ...req, budgetGB: (big.memoryMB / 1024) * 0.5 });
    expect(small.fit!.fits).toBe(false);
    expect(small.fit!.changes.length).toBeGreaterThan(0);
    expect(small.fit!.changes.join(' ')).toMatch(/batch|QLoRA|context|rank|optimizer/i);
  });

  it('lora.plan reads steps and tokens per step from a prepared dataset; datasets.list finds it in the project', async () => {
    const project = await newProject('lathe-wiz-proj-');
    const out = path.join(project, 'datasets', 'sample');
    await prepareCorpus({ inputs: [res.domainCorpus], out, tokenizerDir: res.tinyModel, blockSize: 64, seed: 1 });
    const ds = await call<{ dir: string; blockSize: number; splits: Record<string, { rows: number }> }[]>('datasets.list', { project });
    expect(ds.map((d) => d.dir)).toEqual([out]);
    expect(ds[0]!.blockSize).toBe(64);
    expect((ds[0] as { kind?: string }).kind).toBe('pretrain'); // the Configure page offers DPO/ORPO for 'preference'
    const rows = ds[0]!.splits['train']!.rows;
    const p = await call<{ stepsPerEpoch: number; totalSteps: number; tokensPerStep: number; arithmetic: string; presets: { id: string; arithmetic: string }[] }>('lora.plan', { model: res.tinyModel, dataset: out, rank: 8, targets: 'attention', batchSize: 2, gradAccum: 3, epochs: 2, maxSteps: null });
    expect(p.stepsPerEpoch).toBe(Math.floor(rows / 6));
    expect(p.totalSteps).toBe(2 * Math.floor(rows / 6));
    expect(p.tokensPerStep).toBe(2 * 3 * 64);
    expect(p.arithmetic).toBe('2 blocks × 3 accumulation × 64 tokens = 384 tokens per step');
    expect(p.presets.map((x) => x.id)).toEqual(['quick', 'balanced', 'thorough']);
  });

  it('runs.list / runs.read tell finished, stopped and crashed runs apart and return the history', async () => {
    const project = await newProject('lathe-wiz-runs-');
    const mk = (name: string, steps: number, summary: { stopped: boolean } | null) => {
      const dir = path.join(project, 'runs', name);
      mkdirSync(path.join(dir, 'checkpoints', `step-${String(steps).padStart(6, '0')}`), { recursive: true });
      writeFileSync(path.join(dir, 'checkpoints', `step-${String(steps).padStart(6, '0')}`, 'state.json'), '{}');
      writeFileSync(path.join(dir, 'config.json'), JSON.stringify({ model: '/m', dataset: '/d', out: dir, maxSteps: 10 }));
      const log = new MetricsLog(path.join(dir, 'metrics.jsonl'));
      for (let i = 1; i <= steps; i++) log.append({ kind: 'train', step: i, loss: 5 - i / 10 });
      if (summary) writeFileSync(path.join(dir, 'summary.json'), JSON.stringify({ steps, ...summary }));
      return dir;
    };
    mk('a-finished', 10, { stopped: false });
    mk('b-stopped', 4, { stopped: true });
    const crashed = mk('c-crashed', 3, null);
    // a torn last line from a crash mid-write is skipped
    writeFileSync(path.join(crashed, 'metrics.jsonl'), '{"kind":"train","step":4,"lo', { flag: 'a' });
    const runs = await call<{ name: string; status: string; lastStep: number; totalSteps: number }[]>('runs.list', { project });
    expect(Object.fromEntries(runs.map((r) => [r.name, [r.status, r.lastStep, r.totalSteps]]))).toEqual({
      'a-finished': ['finished', 10, 10], 'b-stopped': ['stopped', 4, 10], 'c-crashed': ['incomplete', 3, 10],
    });
    const d = await call<{ records: { step: number }[]; checkpoints: { step: number }[]; config: { model: string } }>('runs.read', { runDir: crashed });
    expect(d.records.map((r) => r.step)).toEqual([1, 2, 3]);
    expect(d.checkpoints.map((c) => c.step)).toEqual([3]);
    expect(d.config.model).toBe('/m');
    const missing = await dispatch(s, 'runs.read', { runDir: path.join(project, 'nope') });
    expect(missing.ok).toBe(false);
    // A run folder outside every project the user opened is not read (issue 16: runs.read answered for any folder).
    const outside = await dispatch(s, 'runs.read', { runDir: path.dirname(project) });
    expect(outside.ok).toBe(false);
    if (!outside.ok) expect(outside.error.code).toBe('paths.notAllowed');
  });

  it('templates.preview renders, tokenizes and masks only the assistant turns; a broken template is reported, not thrown', async () => {
    const tpl = await call<{ source: string; specialTokens: Record<string, string> }>('templates.load', { modelDir: res.tinyModel });
    const messages = [{ role: 'user', content: 'Which gouge?' }, { role: 'assistant', content: 'A bowl gouge.' }];
    const p = await call<{ text: string; tokens: { token: string; train: number; start: number; end: number }[]; counts: { trained: number }; lint: unknown[] }>('templates.preview', { source: tpl.source, specialTokens: tpl.specialTokens, modelDir: res.tinyModel, messages });
    expect(p.text).toBe('<|im_start|>user\nWhich gouge?<|im_end|>\n<|im_start|>assistant\nA bowl gouge.<|im_end|>\n');
    const trainedText = p.tokens.filter((t) => t.train).map((t) => p.text.slice(t.start, t.end)).join('');
    expect(trainedText).toBe('A bowl gouge.<|im_end|>');
    expect(p.counts.trained).toBe(p.tokens.filter((t) => t.train).length);
    const llama3 = await call<{ source: string; specialTokens: Record<string, string> }>('templates.load', { builtin: 'llama3' });
    const q = await call<{ text: string; lint: { code: string }[] }>('templates.preview', { source: llama3.source, specialTokens: llama3.specialTokens, modelDir: res.tinyModel, messages });
    expect(q.text).toContain('<|start_header_id|>assistant<|end_header_id|>');
    expect(q.lint.map((l) => l.code)).toContain('special-not-in-vocab');
    const broken = await call<{ text: string | null; error: string | null; lint: { code: string }[] }>('templates.preview', { source: '{% for m in messages %}', specialTokens: {}, modelDir: null, messages });
    expect(broken.text).toBeNull();
    // said once, with the line: as the error, not again as a lint finding
    expect(broken.error).toMatch(/syntax error at line 1 of the template, \{% for m in messages %\}: \{% for %\} is never closed/);
    expect(broken.lint.map((l) => l.code)).not.toContain('template-error');
  });
});
