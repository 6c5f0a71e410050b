/** The Hub's channels through `dispatch`: search and the recommended list in words, the download job with the token, the folder then usable as a model. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readdirSync } from 'node:fs';
import path from 'node:path';
import { createTinyModel } from '../../../src-main/engine/models';
import { dispatch, type Services } from '../../../src-main/services';
import type { HubDownloadResult } from '../../../src-main/contract/hub';
import type { JobInfo } from '../../../src-main/contract';
import { startHubServer, type HubServer } from '../../helpers/hub-server';
import { fakeKeychain, tempDir, testServices } from '../../helpers/services';

const TOKEN = 'hf_service_token_987654';
let hub: HubServer;
let s: Services;
let oldEndpoint: string | undefined;

async function call<T>(channel: string, payload: unknown): Promise<T> {
  const env = await dispatch(s, channel, payload);
  if (!env.ok) throw Object.assign(new Error(env.error.message), env.error);
  return env.value as T;
}

beforeAll(async () => {
  const src = path.join(tempDir('lathe-hub-svc-'), 'tiny');
  const made = await createTinyModel('llama', src, { seed: 5 });
  hub = await startHubServer([
    { id: 'lathe-test/tiny-llama', dir: src, downloads: 50, parameters: made.parameters },
    { id: 'lathe-test/tiny-gated', dir: src, gated: true, downloads: 5, parameters: made.parameters },
  ], { token: TOKEN });
  oldEndpoint = process.env['HF_ENDPOINT'];
  process.env['HF_ENDPOINT'] = hub.endpoint;
  // The models folder inside a settings folder (~/.config/lathe/models in the app): the app's own, so allowed.
  s = testServices({ secretBox: fakeKeychain, modelsDir: path.join(tempDir('lathe-home-'), '.config', 'lathe', 'models') });
});

afterAll(async () => {
  s?.jobs.dispose();
  await s?.offload.close();
  await hub?.close();
  if (oldEndpoint === undefined) delete process.env['HF_ENDPOINT']; else process.env['HF_ENDPOINT'] = oldEndpoint;
});

describe('hub channels', () => {
  it('search answers rows with the memory fit in words', async () => {
    const r = await call<{ endpoint: string; results: { repo: string; gated: boolean; fit: { fits: boolean; words: string } | null }[] }>('hub.search', { query: 'tiny', budgetGB: 8 });
    expect(r.endpoint).toBe(hub.endpoint);
    expect(r.results.map((x) => x.repo)).toEqual(['lathe-test/tiny-llama', 'lathe-test/tiny-gated']);
    expect(r.results[0]!.fit?.words).toMatch(/^fits in your 8\.0 GB: yes/);
    expect(r.results[1]!.gated).toBe(true);
  });

  it('recommends starting models by memory, in plain words', async () => {
    const small = await call<{ models: { repo: string; fit: { fits: boolean; words: string; method: string | null } }[] }>('hub.recommended', { budgetGB: 5 });
    const by = (repo: string) => small.models.find((m) => m.repo === repo)!.fit;
    expect(by('HuggingFaceTB/SmolLM2-135M-Instruct')).toMatchObject({ fits: true, method: 'lora' });
    expect(by('meta-llama/Llama-3.1-8B-Instruct').fits).toBe(false);
    expect(by('meta-llama/Llama-3.1-8B-Instruct').words).toMatch(/^fits in your 5\.0 GB: no — it needs about .* even with QLoRA$/);
    const gpu = await call<typeof small>('hub.recommended', { budgetGB: 24, ep: 'cuda' });
    const q7 = gpu.models.find((m) => m.repo === 'Qwen/Qwen2.5-7B-Instruct')!.fit;
    expect(q7.fits).toBe(true);
    expect(q7.words.startsWith('fits in your 24.0 GB: yes')).toBe(true);
    // More memory never makes a model fit worse.
    const order = ['lora', 'qlora', 'qlora-recompute', null];
    for (const m of small.models) {
      const big = gpu.models.find((x) => x.repo === m.repo)!.fit;
      if (m.fit.fits) expect(big.fits).toBe(true);
      if (m.fit.fits && m.fit.method && big.method) expect(order.indexOf(big.method)).toBeLessThanOrEqual(order.indexOf(m.fit.method));
    }
  });

  it('lists the files it would download and those it leaves', async () => {
    const r = await call<{ files: { name: string; check: string }[]; totalBytes: number }>('hub.info', { repo: 'lathe-test/tiny-llama' });
    expect(r.files.find((f) => f.name === 'model.safetensors')?.check).toBe('sha256');
    expect(r.files.find((f) => f.name === 'config.json')?.check).toBe('size');
    expect(r.totalBytes).toBeGreaterThan(0);
  });

  it('will not own a models folder that holds system places (LATHE_MODELS_DIR=/)', async () => {
    const root = testServices({ modelsDir: '/' });
    try {
      expect(root.modelsDir).toBeNull();
      const env = await dispatch(root, 'hub.download', { repo: 'lathe-test/tiny-llama' });
      expect(env.ok).toBe(false);
      if (!env.ok) expect(env.error.code).toBe('hub.noModelsFolder');
      expect((await dispatch(root, 'models.inspect', { path: '/etc' })).ok).toBe(false);
    } finally {
      root.jobs.dispose();
      await root.offload.close();
    }
  });

  it('refuses a hub-download started as a plain job (its endpoint and folder are the app’s)', async () => {
    const env = await dispatch(s, 'jobs.start', { kind: 'hub-download', params: { endpoint: 'http://evil.example', repo: 'a/b', revision: 'main', modelsDir: '/tmp/x' } });
    expect(env.ok).toBe(false);
    if (!env.ok) expect(env.error.code).toBe('hub.useHubDownload');
  });

  it('downloads into a folder the user chose, and refuses system places', async () => {
    const bad = await dispatch(s, 'hub.download', { repo: 'lathe-test/tiny-llama', parentDir: '/etc' });
    expect(bad.ok).toBe(false);
    if (!bad.ok) expect(bad.error.code).toBe('paths.notAllowed');
    const mine = tempDir('lathe-my-models-');
    const { jobId, modelsDir } = await call<{ jobId: string; modelsDir: string }>('hub.download', { repo: 'lathe-test/tiny-llama', parentDir: mine });
    expect(modelsDir).toBe(mine);
    const info = await s.jobs.wait(jobId);
    expect(info.state).toBe('done');
    const dir = (info.result as HubDownloadResult).dir;
    expect(dir).toBe(path.join(mine, 'lathe-test--tiny-llama'));
    expect((await call<{ problems: unknown[] }>('models.inspect', { path: dir })).problems).toEqual([]);
  }, 60_000);

  it('downloads a gated model with the saved token as a job; the folder passes the model check and can be chosen', async () => {
    const noToken = await call<{ jobId: string }>('hub.download', { repo: 'lathe-test/tiny-gated' });
    const failed = await s.jobs.wait(noToken.jobId);
    expect(failed.state).toBe('failed');
    expect(failed.error?.message).toContain('needs you to accept its license on huggingface.co and a token');

    await call('secrets.setHubToken', { token: TOKEN });
    const events: string[] = [];
    const off = s.jobs.onEvent((e) => events.push(JSON.stringify(e)));
    const { jobId, modelsDir } = await call<{ jobId: string; modelsDir: string }>('hub.download', { repo: 'lathe-test/tiny-gated' });
    const info: JobInfo = await s.jobs.wait(jobId);
    off();
    expect(info.state).toBe('done');
    const result = info.result as HubDownloadResult;
    expect(result.dir).toBe(path.join(modelsDir, 'lathe-test--tiny-gated'));
    expect(result.model?.problems).toEqual([]);
    expect(readdirSync(modelsDir).filter((n) => !n.startsWith('.'))).toEqual(['lathe-test--tiny-gated']);
    // The token went to the Hub, and appears in no job event or job info.
    expect(hub.hubLog.some((l) => l.authorization === `Bearer ${TOKEN}`)).toBe(true);
    expect(events.join('\n')).not.toContain(TOKEN);
    expect(JSON.stringify(s.jobs.list())).not.toContain(TOKEN);
    // The downloaded folder is a model the window may use (inside the app's own models folder).
    const summary = await call<{ dir: string }>('models.inspect', { path: result.dir });
    expect(summary.dir).toBe(result.dir);
    const project = await call<{ path: string }>('projects.create', { parentDir: tempDir('lathe-hub-proj-'), name: 'p' });
    const withModel = await call<{ modelPath: string }>('projects.setModel', { path: project.path, modelPath: result.dir });
    expect(withModel.modelPath).toBe(result.dir);
  }, 60_000);
});
