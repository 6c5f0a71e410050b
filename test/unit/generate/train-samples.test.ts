/**
 * Sample generations during training: the trainer answers the sample prompts at the start and every
 * sampleEvery steps with the CURRENT adapter (unmerged, params straight from the training state), writes
 * RUN/samples.jsonl, and the last step's samples equal a fresh generation from the saved checkpoint.
 * Also: the before/after comparison service (base = zero adapter) and the cost, printed.
 */
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { train } from '../../../src-main/engine/train/trainer';
import { CheckpointManager } from '../../../src-main/engine/train/checkpoints';
import { adapterLayout } from '../../../src-main/engine/train/infer';
import { openModel } from '../../../src-main/engine/models';
import { readRunSamples, sampleGenerations, type StepSamples } from '../../../src-main/engine/generate';
import { tinyDataset, tinyModel } from '../../helpers/tiny';
import { tempDir } from '../../helpers/services';

describe('sample generations during training', () => {
  it('samples at steps 0, 3, 6 with the current adapter; the last ones match the checkpoint', async () => {
    const model = await tinyModel('llama', 2);
    const dataset = await tinyDataset(model);
    const out = path.join(tempDir('lathe-samples-'), 'run');
    const seen: StepSamples[] = [];
    const prompts = ['the lathe spins', 'walnut bowls need'];
    const s = await train({
      model, dataset, out, maxSteps: 6, batchSize: 2, optim: { lr: 2e-2 }, evalEvery: 0, ep: 'cpu',
      samplePrompts: prompts, sampleEvery: 3, sampleMaxTokens: 12,
    }, { onSamples: (r) => seen.push(r) });
    expect(s.steps).toBe(6);
    expect(seen.map((r) => r.step)).toEqual([0, 3, 6]);
    for (const r of seen) {
      expect(r.samples.map((x) => x.prompt)).toEqual(prompts);
      for (const x of r.samples) expect(x.tokens).toBeGreaterThan(0);
    }
    console.log(`sample cost (2 prompts × ≤12 tokens, tiny llama, CPU): build ${Math.round(seen[0]!.buildMs)} ms once; ` +
      `per round ${seen.map((r) => Math.round(r.ms)).join(' / ')} ms`);
    const file = readRunSamples(out);
    expect(file.map((x) => x.step)).toEqual([0, 3, 6]);
    expect(file[2]!.samples.map((x) => x.text)).toEqual(seen[2]!.samples.map((x) => x.text));
    // the model changed: at least one prompt is answered differently after 6 steps at a high LR
    expect(seen[2]!.samples.map((x) => x.text)).not.toEqual(seen[0]!.samples.map((x) => x.text));

    // the last samples = a fresh generation from the saved checkpoint (same params, greedy)
    const ck = (await new CheckpointManager(path.join(out, 'checkpoints')).latest())!;
    const { config, layout, weights } = await openModel(model);
    const ad = adapterLayout(ck, config, layout);
    await weights.close();
    const fresh = await sampleGenerations(model, ad.params.data as Float32Array, ad.lora, prompts, { maxTokens: 12 });
    expect(fresh.samples.map((x) => x.text)).toEqual(seen[2]!.samples.map((x) => x.text));
    // and with a zero adapter it is the base model: step 0's samples (B = 0 at init)
    const base = await sampleGenerations(model, new Float32Array(ad.lora.size), ad.lora, prompts, { maxTokens: 12 });
    expect(base.samples.map((x) => x.text)).toEqual(seen[0]!.samples.map((x) => x.text));
  });
});
