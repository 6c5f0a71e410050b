/**
 * Packed SFT rows: two samples in one row must train exactly as if each sat alone in its own row
 * (attention kept inside a sample, RoPE positions restarting), and the trainer runs on an SFT dataset
 * rendered through the model's own chat template with assistant-only loss.
 */
import { describe, expect, it } from 'vitest';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { openModel } from '../../../../src-main/engine/models';
import { buildEvalGraph } from '../../../../src-main/engine/llm/train-graph';
import { TokenRows } from '../../../../src-main/engine/llm/lora';
import { EngineSession } from '../../../../src-main/engine/backends/onnx';
import { feedsOf, makeSftBatch } from '../../../../src-main/engine/train/batch';
import { train } from '../../../../src-main/engine/train/trainer';
import { prepareCorpus } from '../../../../src-main/data/prepare';
import { createChatRenderer, loadTemplateFromFolder, loadTemplateTokenizer } from '../../../../src-main/templates';
import { tinyModel } from '../../../helpers/tiny';
import { tempDir } from '../../../helpers/services';

function row(samples: { ids: number[]; mask: number[] }[], T: number) {
  const ids = new Uint32Array(T), mask = new Uint8Array(T), segments = new Uint16Array(T), positions = new Uint32Array(T);
  let k = 0;
  samples.forEach((s, si) => s.ids.forEach((id, j) => { ids[k] = id; mask[k] = s.mask[j]!; segments[k] = si + 1; positions[k] = j; k++; }));
  return { ids, mask, segments, positions };
}

describe('packed SFT rows', () => {
  // (gemma3: per-layer window masks and local/global RoPE tables on restarted positions; phi3: longrope)
  for (const arch of ['llama', 'qwen3', 'gpt2', 'gemma3', 'phi3']) {
    it(`${arch}: a packed row's loss equals the sum of its samples trained alone`, async () => {
      const dir = await tinyModel(arch);
      const { config, layout, weights } = await openModel(dir);
      const T = 16;
      const g = await buildEvalGraph(config, layout, { weights, dir }, null, { batch: 1, seqLen: T, packed: true });
      const s = await EngineSession.create(g.model, { ep: 'cpu', externalDataDir: dir });
      const a = { ids: [5, 17, 33, 41, 12, 9], mask: [0, 0, 1, 1, 1, 1] };
      const b = { ids: [7, 70, 21, 3, 88, 19, 44], mask: [0, 0, 0, 1, 1, 1, 1] };
      const loss = async (samples: typeof a[]) => {
        const batch = makeSftBatch([row(samples, T)], T, new TokenRows(config.vocabSize, null));
        const out = await s.run(feedsOf(batch, 1, T), ['loss_sum']);
        return { sum: Number(out['loss_sum']!.data[0]), count: batch.count };
      };
      const both = await loss([a, b]), la = await loss([a]), lb = await loss([b]);
      expect(both.count).toBe(la.count + lb.count);
      expect(both.count).toBe(4 + 4); // every assistant token is a target, predicted from the token before it
      expect(Math.abs(both.sum - (la.sum + lb.sum))).toBeLessThan(1e-5 * Math.abs(both.sum));
      await s.dispose(); await weights.close();
    });
  }

  it('trains on a chat dataset rendered with the model\'s chat template (assistant tokens only)', async () => {
    const model = await tinyModel('llama');
    const base = tempDir();
    const convs = Array.from({ length: 30 }, (_, i) => JSON.stringify({
      messages: [
        { role: 'system', content: 'You answer questions about wood turning.' },
        { role: 'user', content: `Which gouge for bowl number ${i}?` },
        { role: 'assistant', content: `Use a bowl gouge with a swept-back grind for bowl ${i}.` },
      ],
    }));
    writeFileSync(path.join(base, 'chat.jsonl'), convs.join('\n') + '\n');
    const renderer = createChatRenderer(loadTemplateFromFolder(model), loadTemplateTokenizer(model));
    const dataset = path.join(base, 'sft');
    await prepareCorpus({ mode: 'sft', inputs: [path.join(base, 'chat.jsonl')], out: dataset, tokenizerDir: model, renderer, blockSize: 128, valFraction: 0.1, seed: 1 });
    const s = await train({ model, dataset, out: path.join(base, 'run'), maxSteps: 15, batchSize: 2, optim: { lr: 1e-2 }, evalEvery: 0, ep: 'cpu' });
    expect(s.steps).toBe(15);
    expect(s.val['val-domain']!.loss).toBeLessThan(s.valBefore['val-domain']!.loss);
  });
});
