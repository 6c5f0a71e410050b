import { describe, expect, it } from 'vitest';
import { readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { commands } from '../../../src-main/cli/commands/export';
import type { CliContext } from '../../../src-main/cli/types';
import { JobRequest, type JobEvent } from '../../../src-main/contract';
import { JobHost } from '../../../src-main/services/jobs/host';
import { spawnNodeJobProcess } from '../../../src-main/services/jobs/node-process';
import { train } from '../../../src-main/engine/train/trainer';
import type { ExportResult } from '../../../src-main/export';
import { tinyDataset, tinyModel } from '../../helpers/tiny';
import { tempDir } from '../../helpers/services';

function run(flags: CliContext['flags'], json = true) {
  const cmd = commands.find((c) => c.path.join(' ') === 'export')!;
  const out: string[] = [], err: string[] = [];
  const ctx: CliContext = { args: [], flags, json, out: (t) => out.push(t), err: (t) => err.push(t), signal: new AbortController().signal };
  return cmd.run(ctx).then((result) => ({ result: result as ExportResult, out, err }));
}

describe('lathe export and the export job', () => {
  it('exports a really trained run (3 steps) merged and as PEFT; the card carries the run\'s results', async () => {
    const model = await tinyModel('llama');
    const dataset = await tinyDataset(model);
    const runDir = path.join(tempDir(), 'run');
    const s = await train({ model, dataset, out: runDir, maxSteps: 3, batchSize: 2, evalEvery: 3, checkpointEvery: 3, ep: 'cpu', optim: { lr: 5e-3 }, lora: { rank: 4, alpha: 8, targets: 'attention' } });
    const out = path.join(tempDir(), 'merged');
    const { result, err } = await run({ format: 'merged', model, adapter: runDir, out, dtype: 'bf16', json: true });
    expect(result.step).toBe(3);
    expect(result.dtype).toBe('bf16');
    expect(result.verification!.passed).toBe(true);
    expect(err.some((l) => l.includes('Writing merged weights'))).toBe(true);
    expect(err.some((l) => l.includes('Checking the export'))).toBe(true);
    const card = readFileSync(path.join(out, 'README.md'), 'utf8');
    expect(card).toContain(`Final training loss: ${s.finalLoss!.toFixed(4)}`);
    expect(card).toContain('q_proj');
    expect(card).toContain('| val-domain |');

    const peftOut = path.join(tempDir(), 'adapter');
    const human = await run({ format: 'peft', model, adapter: path.join(runDir, 'checkpoints', 'step-000003'), out: peftOut }, false);
    expect(human.out[0]).toMatch(/^PEFT adapter \(f32, 16 tensors/);
    expect(human.out.join('\n')).toContain('passed');
    expect(JSON.parse(readFileSync(path.join(peftOut, 'adapter_config.json'), 'utf8')).target_modules).toEqual(['k_proj', 'o_proj', 'q_proj', 'v_proj']);
  });

  it('CLI flags are checked in plain words', async () => {
    await expect(run({ format: 'onnx', model: 'm', adapter: 'a', out: 'o' })).rejects.toMatchObject({ code: 'cli.format' });
    await expect(run({ format: 'gguf', model: 'm', adapter: 'a', out: 'o' })).rejects.toMatchObject({ code: 'cli.quant', hint: expect.stringContaining('q4_k_m') });
    await expect(run({ format: 'gguf', model: 'm', adapter: 'a', out: 'o', quant: 'q2_k' })).rejects.toMatchObject({ code: 'cli.quant' });
    await expect(run({ format: 'merged', model: 'm', adapter: 'a', out: 'o', quant: 'q8_0' })).rejects.toMatchObject({ code: 'cli.quant' });
    await expect(run({ format: 'merged', adapter: 'a', out: 'o' })).rejects.toMatchObject({ code: 'cli.missing', message: 'Missing --model.' });
    await expect(run({ format: 'merged', model: 'm', adapter: 'a', out: 'o', dtype: 'int8' })).rejects.toMatchObject({ code: 'cli.dtype' });
  });

  it('the contract accepts export jobs (defaults applied) and rejects unknown keys', () => {
    const ok = JobRequest.parse({ kind: 'export', params: { format: 'peft', model: '/m', adapter: '/r', out: '/o' } });
    expect(ok).toMatchObject({ kind: 'export', params: { overwrite: false, verify: true } });
    expect(JobRequest.safeParse({ kind: 'export', params: { format: 'peft', model: '/m', adapter: '/r', out: '/o', gguf: true } }).success).toBe(false);
    expect(JobRequest.parse({ kind: 'export', params: { format: 'gguf', quant: 'q4_k_m', model: '/m', adapter: '/r', out: '/o' } })).toMatchObject({ params: { quant: 'q4_k_m' } });
    expect(JobRequest.safeParse({ kind: 'export', params: { format: 'gguf', quant: 'q3_k', model: '/m', adapter: '/r', out: '/o' } }).success).toBe(false);
  });

  it('runs as a job in its own process with staged progress', async () => {
    const { handRun } = await import('./helpers');
    const model = await tinyModel('gpt2');
    const runDir = tempDir();
    await handRun(model, runDir);
    const out = path.join(tempDir(), 'job-out');
    const host = new JobHost(spawnNodeJobProcess);
    const events: JobEvent[] = [];
    host.onEvent((e) => events.push(e));
    const id = host.start({ kind: 'export', params: { format: 'merged', model, adapter: runDir, out, overwrite: false, verify: true } });
    const final = await host.wait(id);
    expect(final.state, JSON.stringify(final.error)).toBe('done');
    expect((final.result as ExportResult).verification!.passed).toBe(true);
    const stages = new Set(events.filter((e): e is Extract<JobEvent, { type: 'progress' }> => e.type === 'progress').map((e) => e.stage));
    expect([...stages]).toEqual(expect.arrayContaining(['Opening the model', 'Writing merged weights', 'Checking the export', 'Moving into place']));
    expect(readdirSync(out)).toContain('model.safetensors');
  });

  it('GGUF: lathe export --format gguf prints the check and the ollama command; the job runs it in its own process', async () => {
    const { handRun } = await import('./helpers');
    const model = await tinyModel('qwen2');
    const runDir = tempDir();
    await handRun(model, runDir);
    const out = path.join(tempDir(), 'gguf');
    const human = await run({ format: 'gguf', quant: 'q8_0', model, adapter: runDir, out, name: 'tiny-qwen' }, false);
    expect(human.out[0]).toMatch(/^GGUF Q8_0 \(.*Q8_0.*pre-tokenizer gpt-2/);
    expect(human.out.join('\n')).toContain('check (llama.cpp): tokenization equal');
    expect(human.out.join('\n')).toContain(`ollama create tiny-qwen -f ${path.join(out, 'Modelfile')}`);
    expect(readdirSync(out).sort()).toEqual(['Modelfile', 'tiny-qwen-Q8_0.gguf']);

    const host = new JobHost(spawnNodeJobProcess);
    const events: JobEvent[] = [];
    host.onEvent((e) => events.push(e));
    const jobOut = path.join(tempDir(), 'gguf-job');
    const id = host.start({ kind: 'export', params: { format: 'gguf', quant: 'f16', model, adapter: runDir, out: jobOut, overwrite: false, verify: true } });
    const final = await host.wait(id);
    expect(final.state, JSON.stringify(final.error)).toBe('done');
    const r = final.result as ExportResult;
    expect(r.format).toBe('gguf');
    expect(r.dtype).toBe('f16');
    expect(r.gguf!.check!.passed).toBe(true);
    expect(r.gguf!.check!.maxAbsProbDiff).toBeLessThanOrEqual(2e-3);
    const stages = new Set(events.filter((e): e is Extract<JobEvent, { type: 'progress' }> => e.type === 'progress').map((e) => e.stage));
    expect([...stages]).toEqual(expect.arrayContaining(['Opening the model', 'Writing the GGUF file', 'Checking the file with llama.cpp', 'Moving into place']));
  });
});
