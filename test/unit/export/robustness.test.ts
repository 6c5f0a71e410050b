import { afterEach, describe, expect, it, vi } from 'vitest';
import { chmodSync, existsSync, mkdirSync, promises as fsp, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { exportModel } from '../../../src-main/export';
import { CancelledError } from '../../../src-main/util/progress';
import { tinyModel } from '../../helpers/tiny';
import { tempDir } from '../../helpers/services';
import { handRun } from './helpers';

async function setup() {
  const model = await tinyModel('llama');
  const run = path.join(tempDir('lathe-rob-run-'), 'run');
  mkdirSync(run, { recursive: true });
  await handRun(model, run);
  const parent = tempDir('lathe-rob-out-');
  return { model, run, parent, out: path.join(parent, 'exported') };
}

afterEach(() => vi.restoreAllMocks());

describe('export robustness', () => {
  it('refuses a non-empty destination unless overwrite, and then replaces it whole', async () => {
    const { model, run, parent, out } = await setup();
    mkdirSync(out);
    writeFileSync(path.join(out, 'keep.txt'), 'mine');
    await expect(exportModel({ format: 'merged', model, adapter: run, out, verify: false })).rejects.toMatchObject({ code: 'export.out-exists' });
    expect(readFileSync(path.join(out, 'keep.txt'), 'utf8')).toBe('mine');
    await exportModel({ format: 'peft', model, adapter: run, out, overwrite: true, verify: false });
    expect(readdirSync(out).sort()).toEqual(['README.md', 'adapter_config.json', 'adapter_model.safetensors']);
    expect(readdirSync(parent)).toEqual(['exported']);
  });

  it('a destination that cannot be written is a clear UserError and leaves nothing behind', async () => {
    const { model, run, parent } = await setup();
    // Root ignores file modes, so as root use a kernel folder where creating entries is refused.
    const locked = process.getuid?.() === 0 ? '/sys/kernel' : parent;
    if (locked === parent) chmodSync(parent, 0o555);
    const out = path.join(locked, 'lathe-export-test');
    try {
      const err = await exportModel({ format: 'merged', model, adapter: run, out, verify: false }).catch((e) => e);
      expect(err).toMatchObject({ name: 'UserError', code: 'write-denied' });
      expect(err.hint).toContain('Choose a folder you can write to');
      expect(existsSync(out)).toBe(false);
      expect(readdirSync(locked).some((f) => f.includes('lathe-export-test'))).toBe(false);
    } finally {
      if (locked === parent) chmodSync(parent, 0o755);
    }
  });

  it('a disk-full error while writing weights becomes a UserError; no partial model or staging folder remains', async () => {
    const { model, run, parent, out } = await setup();
    const realOpen = fsp.open.bind(fsp);
    // Fail the weights file after its header and first tensor, as a full disk would.
    vi.spyOn(fsp, 'open').mockImplementation(async (...args: Parameters<typeof fsp.open>) => {
      const h = await realOpen(...args);
      if (String(args[0]).includes('model.safetensors') && args[1] === 'w') {
        let writes = 0;
        const realWrite = h.write.bind(h) as (...a: unknown[]) => Promise<unknown>;
        (h as unknown as { write: unknown }).write = async (...a: unknown[]) => {
          if (++writes > 2) throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
          return realWrite(...a);
        };
      }
      return h;
    });
    const err = await exportModel({ format: 'merged', model, adapter: run, out }).catch((e) => e);
    expect(err).toMatchObject({ name: 'UserError', code: 'disk-full' });
    expect(err.hint).toContain('Free some space');
    expect(existsSync(out)).toBe(false);
    expect(readdirSync(parent)).toEqual([]);
  });

  it('cancelling stops the export and removes the staging folder', async () => {
    const { model, run, parent, out } = await setup();
    const ac = new AbortController();
    const stages: string[] = [];
    const err = await exportModel({ format: 'merged', model, adapter: run, out }, {
      signal: ac.signal,
      onProgress: (p) => { stages.push(p.stage ?? ''); if (p.stage === 'Writing merged weights' && (p.fraction ?? 0) > 0.3) ac.abort(); },
    }).catch((e) => e);
    expect(err).toBeInstanceOf(CancelledError);
    expect(stages).toContain('Opening the model');
    expect(existsSync(out)).toBe(false);
    expect(readdirSync(parent)).toEqual([]);
  });

  it('removes staging folders left by a crashed export to the same destination (dead pid), not live ones', async () => {
    const { model, run, parent, out } = await setup();
    const dead = path.join(parent, '.exported.export-999999999-abcd.tmp');
    const live = path.join(parent, `.exported.export-${process.ppid}-beef.tmp`);
    mkdirSync(dead); writeFileSync(path.join(dead, 'model.safetensors'), 'partial');
    mkdirSync(live);
    await exportModel({ format: 'peft', model, adapter: run, out, verify: false });
    expect(readdirSync(parent).sort()).toEqual([path.basename(live), 'exported'].sort());
  });

  it('names what is wrong with the inputs', async () => {
    const { model, run, out } = await setup();
    await expect(exportModel({ format: 'merged', model, adapter: path.join(run, 'nope'), out })).rejects.toMatchObject({ code: 'export.adapter-missing' });
    await expect(exportModel({ format: 'merged', model, adapter: tempDir(), out })).rejects.toMatchObject({ name: 'UserError' });
    await expect(exportModel({ format: 'gguf' as never, model, adapter: run, out })).rejects.toMatchObject({ code: 'export.params' });
    const other = await tinyModel('qwen3');
    await expect(exportModel({ format: 'merged', model: other, adapter: run, out })).rejects.toMatchObject({ code: 'adapter.mismatch' });
    expect(existsSync(out)).toBe(false);
  });
});
