import { describe, expect, it } from 'vitest';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { commands } from '../../../src-main/cli/commands/handoff';
import { commands as exportCommands } from '../../../src-main/cli/commands/export';
import type { CliContext } from '../../../src-main/cli/types';
import { train } from '../../../src-main/engine/train/trainer';
import { evaluatePerplexity } from '../../../src-main/engine/train/infer';
import { tinyDataset, tinyModel } from '../../helpers/tiny';
import { tempDir } from '../../helpers/services';

async function cli(list: typeof commands, name: string, args: string[], flags: CliContext['flags'], json = false) {
  const cmd = list.find((c) => c.path.join(' ') === name)!;
  const out: string[] = [], err: string[] = [];
  const ctx: CliContext = { args, flags, json, out: (t) => out.push(t), err: (t) => err.push(t), signal: new AbortController().signal };
  return { result: await cmd.run(ctx), out, err };
}

describe('lathe handoff / import-adapter (CLI)', () => {
  it('a really trained run: hand-off prints its warnings; its PEFT export imported back evaluates exactly like the run', async () => {
    const model = await tinyModel('llama');
    const dataset = await tinyDataset(model);
    const run = path.join(tempDir(), 'run');
    await train({ model, dataset, out: run, maxSteps: 3, batchSize: 3, gradAccum: 1, evalEvery: 0, ep: 'cpu', optim: { lr: 5e-3 }, lora: { rank: 4, alpha: 8, targets: 'attention' } });

    const job = path.join(tempDir(), 'job');
    const h = await cli(commands, 'handoff', [], { run, target: 'accelerate', gpus: '2', out: job });
    expect(h.out[0]).toMatch(/^accelerate job written to .*job/);
    expect(h.out.some((l) => l.includes('warning: batch: Lathe\'s effective batch of 3 blocks'))).toBe(true);
    expect(h.out.some((l) => l.includes('warning: ep: "cpu" does not apply'))).toBe(true);
    expect(existsSync(path.join(job, 'train.py'))).toBe(true);
    await expect(cli(commands, 'handoff', [], { run, target: 'megatron', gpus: '2', out: job })).rejects.toMatchObject({ code: 'cli.target' });
    await expect(cli(commands, 'handoff', [], { run, target: 'axolotl', out: job })).rejects.toMatchObject({ code: 'cli.missing' });

    const adapter = path.join(tempDir(), 'adapter');
    await cli(exportCommands, 'export', [], { format: 'peft', model, adapter: run, out: adapter });
    const imported = path.join(tempDir(), 'imported');
    const i = await cli(commands, 'import-adapter', [adapter], { model, out: imported });
    expect(i.out[0]).toMatch(/^Imported a rank-4 LoRA \(alpha 8, 8 layers: q, k, v, o\)/);
    const a = await evaluatePerplexity(model, dataset, { checkpoint: run, ep: 'cpu' });
    const b = await evaluatePerplexity(model, dataset, { checkpoint: imported, ep: 'cpu' });
    expect(b.splits).toEqual(a.splits);
  });
});
