/**
 * Limits on work done for a call (issue 16): a runaway template preview is stopped in its worker thread
 * while the calling thread keeps serving; LoRA planning refuses numbers it cannot plan with, naming them.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { cpSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { dispatch } from '../../../src-main/services';
import { OffloadPool } from '../../../src-main/services/offload/pool';
import { tempDir, testServices } from '../../helpers/services';

const s = testServices();
const messages = [{ role: 'user', content: 'hi' }, { role: 'assistant', content: 'hello' }];
afterAll(async () => { await s.offload.close(); });

describe('offloaded calls', () => {
  it('stops a template preview with a huge range() loop after its time limit; the caller never blocks; the next preview works', async () => {
    // Warm the worker so the time below is the task's, not the module loading.
    expect((await dispatch(s, 'templates.preview', { source: 'x', specialTokens: {}, modelDir: null, messages })).ok).toBe(true);
    let last = Date.now(), worstGap = 0;
    const tick = setInterval(() => { const now = Date.now(); worstGap = Math.max(worstGap, now - last); last = now; }, 50);
    const t = Date.now();
    const env = await dispatch(s, 'templates.preview', { source: '{% for i in range(100000) %}{% for j in range(100000) %}{{ j }}{% endfor %}{% endfor %}', specialTokens: {}, modelDir: null, messages });
    const took = Date.now() - t;
    clearInterval(tick);
    expect(env.ok).toBe(false);
    if (!env.ok) {
      expect(env.error.code).toBe('work.timeLimit');
      expect(env.error.message).toMatch(/took longer than 5 s/);
      expect(env.error.hint).toMatch(/range/);
    }
    expect(took).toBeLessThan(15_000);
    expect(worstGap).toBeLessThan(1_000); // the thread that serves the window kept running
    const next = await dispatch(s, 'templates.preview', { source: '{% for m in messages %}{{ m.content }};{% endfor %}', specialTokens: {}, modelDir: null, messages });
    expect(next).toMatchObject({ ok: true, value: { text: 'hi;hello;', error: null } });
  });

  it('a pool with a short limit stops the task and starts a fresh worker for the next one', async () => {
    const pool = new OffloadPool({ limitsMs: { 'templates.preview': 300 } });
    const slow = { source: '{% for i in range(100000) %}{% for j in range(100000) %}x{% endfor %}{% endfor %}', specialTokens: {}, modelDir: null, messages };
    await expect(pool.run('templates.preview', slow)).rejects.toMatchObject({ code: 'work.timeLimit' });
    await expect(pool.run('templates.preview', { ...slow, source: 'ok' })).resolves.toMatchObject({ text: 'ok' });
    await pool.close();
  });

  it('lora.plan refuses huge, negative and fractional numbers, naming each field', async () => {
    const res = await dispatch(s, 'app.resources', {});
    const model = (res as { value: { tinyModel: string } }).value.tinyModel;
    const base = { model, dataset: null, rank: 8, targets: 'attention', batchSize: 4, gradAccum: 1, epochs: 1, maxSteps: null };
    for (const [field, value] of [['batchSize', 1e300], ['gradAccum', -5], ['rank', 2.5], ['maxSteps', 2.5], ['epochs', 1e300], ['rank', 0], ['batchSize', Number.MAX_SAFE_INTEGER]] as const) {
      const env = await dispatch(s, 'lora.plan', { ...base, [field]: value });
      expect(env.ok, `${field}=${value}`).toBe(false);
      if (!env.ok) {
        expect(env.error.code).toBe('ipc.badPayload');
        expect(env.error.message).toContain(`${field}:`);
      }
    }
    expect((await dispatch(s, 'lora.plan', base)).ok).toBe(true);
  });

  it('refuses a config.json with impossible sizes before building anything (1e9 layers used to exhaust memory and end the process)', async () => {
    const res = await dispatch(s, 'app.resources', {});
    const tiny = (res as { value: { tinyModel: string } }).value.tinyModel;
    const dir = path.join(tempDir('lathe-bad-config-'), 'model');
    cpSync(tiny, dir, { recursive: true });
    const cfg = JSON.parse(readFileSync(path.join(tiny, 'config.json'), 'utf8')) as Record<string, unknown>;
    for (const [key, value] of [['num_hidden_layers', 1e9], ['vocab_size', 1e15], ['hidden_size', 1e300]] as const) {
      writeFileSync(path.join(dir, 'config.json'), JSON.stringify({ ...cfg, [key]: value }));
      const inspected = await dispatch(s, 'models.inspect', { path: dir });
      expect(inspected.ok).toBe(false);
      const plan = await dispatch(s, 'lora.plan', { model: dir, dataset: null, rank: 8, targets: 'attention', batchSize: 4, gradAccum: 1, epochs: 1, maxSteps: null });
      for (const env of [inspected, plan]) {
        expect(env.ok).toBe(false);
        if (!env.ok) {
          expect(env.error.code).toBe('models.implausibleConfig');
          expect(env.error.message).toContain(key);
        }
      }
    }
  });
});
