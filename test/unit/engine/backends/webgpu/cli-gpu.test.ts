/** `--ep gpu` for `lathe generate`, `chat`, `logits`, `eval` and `eval report`: Lathe's GPU backend runs them (no fallback) with the CPU EP's results. */
import { afterAll, describe, expect, it } from 'vitest';
import { main } from '../../../../../src-main/cli/main';
import { closeGpu } from '../../../../../src-main/engine/backends/webgpu';
import path from 'node:path';
import { train } from '../../../../../src-main/engine/train/trainer';
import { tinyDataset, tinyModel } from '../../../../helpers/tiny';
import { tempDir } from '../../../../helpers/services';

afterAll(() => closeGpu());

async function lathe(...argv: string[]): Promise<{ code: number; json: Record<string, unknown>; err: string }> {
  const out: string[] = [], err: string[] = [];
  const code = await main([...argv, '--json'], { out: (s) => { out.push(s); return true; }, err: (s) => { err.push(s); return true; } });
  return { code, json: JSON.parse(out.join('\n')) as Record<string, unknown>, err: err.join('\n') };
}

describe('lathe eval / logits / generate / chat --ep gpu', () => {
  it('run on the GPU backend and agree with --ep cpu', async () => {
    const model = await tinyModel('qwen3', 2);
    const both = async (...argv: string[]) => {
      const cpu = await lathe(...argv, '--ep', 'cpu');
      const gpu = await lathe(...argv, '--ep', 'gpu');
      expect(cpu.code, cpu.err).toBe(0);
      expect(gpu.code, gpu.err).toBe(0);
      expect(gpu.err).not.toMatch(/CPU EP instead|fall/i);
      return { cpu: cpu.json, gpu: gpu.json };
    };
    const g = await both('generate', '--model', model, '--prompt', 'the lathe spins', '--greedy', '--max-tokens', '8');
    expect(g.gpu['ids']).toEqual(g.cpu['ids']);
    expect(g.gpu['text']).toBe(g.cpu['text']);
    const s = await both('generate', '--model', model, '--prompt', 'the lathe spins', '--temperature', '0.9', '--seed', '4', '--max-tokens', '8');
    expect(s.gpu['ids']).toEqual(s.cpu['ids']);
    const c = await both('chat', '--model', model, '--message', 'how do I sharpen a gouge?', '--greedy', '--max-tokens', '8');
    expect(c.gpu['text']).toBe(c.cpu['text']);
    const l = await both('logits', '--model', model, '--ids', '1,5,17,42,9');
    const lc = (l.cpu['logits'] as number[][]).flat(), lg = (l.gpu['logits'] as number[][]).flat();
    expect(lg.length).toBe(lc.length);
    let d = 0, m = 0;
    lc.forEach((x, i) => { d = Math.max(d, Math.abs(lg[i]! - x)); m = Math.max(m, Math.abs(x)); });
    expect(d / m).toBeLessThan(1e-5);
    const data = await tinyDataset(model, { docs: 8, blockSize: 16 });
    const e = await both('eval', '--model', model, '--data', data, '--max-blocks', '8');
    const ec = e.cpu['splits'] as Record<string, { loss: number; tokens: number }>, eg = e.gpu['splits'] as typeof ec;
    expect(Object.keys(eg)).toEqual(Object.keys(ec));
    for (const [k, v] of Object.entries(ec)) {
      expect(eg[k]!.tokens).toBe(v.tokens);
      expect(Math.abs(eg[k]!.loss - v.loss) / v.loss).toBeLessThan(1e-5);
    }
    // the evaluation report of a short run: perplexity before/after and greedy generations with the adapter
    const run = path.join(tempDir('lathe-cli-gpu-'), 'run');
    await train({ model, dataset: data, out: run, maxSteps: 3, batchSize: 2, optim: { lr: 2e-2 }, evalEvery: 0, ep: 'cpu' });
    const r = await both('eval', 'report', '--run', run, '--prompt', 'the lathe', '--max-tokens', '5', '--max-blocks', '4');
    const pc = r.cpu['perplexity'] as { split: string; before: { loss: number }; after: { loss: number } }[], pg = r.gpu['perplexity'] as typeof pc;
    expect(pg.map((x) => x.split)).toEqual(pc.map((x) => x.split));
    pc.forEach((c, i) => {
      expect(Math.abs(pg[i]!.before.loss - c.before.loss) / c.before.loss).toBeLessThan(1e-5);
      expect(Math.abs(pg[i]!.after.loss - c.after.loss) / c.after.loss).toBeLessThan(1e-5);
    });
    expect(r.gpu['generations']).toEqual(r.cpu['generations']);
  }, 600_000);
});
