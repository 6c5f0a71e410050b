/** `lathe generate`, `lathe chat` (one turn, --compare) and `lathe eval report` end to end with --json. */
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { main } from '../../../src-main/cli/main';
import { train } from '../../../src-main/engine/train/trainer';
import { tinyDataset, tinyModel } from '../../helpers/tiny';
import { tempDir } from '../../helpers/services';

async function lathe(...argv: string[]): Promise<{ code: number; json: Record<string, unknown>; err: string }> {
  const out: string[] = [], err: string[] = [];
  const code = await main([...argv, '--json'], { out: (s) => { out.push(s); return true; }, err: (s) => { err.push(s); return true; } });
  return { code, json: JSON.parse(out.join('\n')) as Record<string, unknown>, err: err.join('\n') };
}

describe('lathe generate / chat / eval report', () => {
  it('generates, chats through the template, compares base and adapter, and reports', async () => {
    const model = await tinyModel('qwen3', 2);
    const g1 = await lathe('generate', '--model', model, '--prompt', 'the lathe', '--greedy', '--max-tokens', '6');
    expect(g1.code).toBe(0);
    expect((g1.json['ids'] as number[]).length).toBeLessThanOrEqual(6);
    const g2 = await lathe('generate', '--model', model, '--prompt', 'the lathe', '--greedy', '--max-tokens', '6');
    expect(g2.json['text']).toBe(g1.json['text']);

    const c = await lathe('chat', '--model', model, '--message', 'how do I sharpen a gouge?', '--system', 'Be brief.', '--greedy', '--max-tokens', '8');
    expect(c.code).toBe(0);
    expect(c.json['prompt']).toBe('<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nhow do I sharpen a gouge?<|im_end|>\n<|im_start|>assistant\n');

    const bad = await lathe('generate', '--model', model, '--prompt', 'x', '--temperature', '0');
    expect(bad.code).toBe(1);
    expect((bad.json['error'] as { message: string }).message).toMatch(/Temperature must be a number above 0 \(got 0\)/);

    const dataset = await tinyDataset(model);
    const run = path.join(tempDir('lathe-cli-gen-'), 'run');
    await train({ model, dataset, out: run, maxSteps: 6, batchSize: 2, optim: { lr: 2e-2 }, evalEvery: 0, ep: 'cpu' });
    const cmp = await lathe('chat', '--model', model, '--adapter', run, '--compare', '--message', 'how do I sharpen a gouge?', '--system', 'Be brief.', '--greedy', '--max-tokens', '8');
    expect(cmp.code).toBe(0);
    const base = cmp.json['base'] as { text: string }, tuned = cmp.json['tuned'] as { text: string };
    expect(base.text).toBe(c.json['text']); // base = the model without adapter
    const single = await lathe('chat', '--model', model, '--adapter', run, '--message', 'how do I sharpen a gouge?', '--system', 'Be brief.', '--greedy', '--max-tokens', '8');
    expect(tuned.text).toBe(single.json['text']);

    const rep = await lathe('eval', 'report', '--run', run, '--prompt', 'the lathe', '--max-tokens', '5', '--max-blocks', '4');
    expect(rep.code).toBe(0);
    expect((rep.json['perplexity'] as unknown[]).length).toBeGreaterThan(0);
    expect((rep.json['generations'] as { prompt: string }[])[0]!.prompt).toBe('the lathe');
  });
});
