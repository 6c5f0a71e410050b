import { describe, expect, it } from 'vitest';
import { commands } from '../../../src-main/cli/commands/memory';
import { tinyModel } from '../../helpers/tiny';

describe('lathe memory', () => {
  it('prints the estimate and what to change for a budget (--json)', async () => {
    const model = await tinyModel('qwen3');
    const lines: string[] = [];
    const run = (flags: Record<string, string | boolean>, json: boolean) => commands[0]!.run({
      args: [], flags: { model, ...flags }, json, out: (t) => lines.push(t), err: () => undefined, signal: new AbortController().signal,
    }) as Promise<{ estimate: { deviceTotal: number; device: Record<string, number> }; fit: { fits: boolean; message: string } | null }>;
    const r = await run({ batch: '2', 'seq-len': '64', ep: 'cpu', 'budget-gb': '0.1' }, true);
    expect(lines).toEqual([]); // --json prints nothing itself
    expect(r.estimate.deviceTotal).toBe(Object.values(r.estimate.device).reduce((a, b) => a + b, 0));
    expect(r.fit).toMatchObject({ fits: false });
    const h = await run({ quantization: 'nf4', ep: 'webgpu', 'budget-gb': '16' }, false);
    expect(h.fit!.fits).toBe(true);
    expect(lines.join('\n')).toMatch(/weights[\s\S]*total[\s\S]*Fits: about/);
    await expect(run({ ep: 'tpu' }, true)).rejects.toMatchObject({ code: 'cli.badFlag' });
  });
});
