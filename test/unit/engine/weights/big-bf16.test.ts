import { describe, expect, it } from 'vitest';
import { rmSync } from 'node:fs';
import path from 'node:path';
import { openModel } from '../../../../src-main/engine/models';
import { buildLoraLayout } from '../../../../src-main/engine/llm/lora';
import { buildTrainGraph } from '../../../../src-main/engine/llm/train-graph';
import { encodeModel } from '../../../../src-main/engine/onnx/encode';
import { train } from '../../../../src-main/engine/train/trainer';
import { openWeightSource } from '../../../../src-main/engine/weights/source';
import { bigBf16Model } from '../../../helpers/big';
import { tinyDataset } from '../../../helpers/tiny';
import { tempDir } from '../../../helpers/services';

// A bf16 model whose f32 weights pass 2 GB (protobuf's limit: embedding them in the .onnx failed with
// "Invalid typed array length"): Qwen2.5's vocabulary at hidden 2048, untied, one small layer (~625M parameters).
// Peak RSS of the test process: 2.7 GB.
describe('a bf16 model of more than 2 GB in f32', () => {
  it('trains one step through the weight cache, with a small .onnx', async () => {
    const model = await bigBf16Model('qwen2', {
      hidden_size: 2048, num_hidden_layers: 1, num_attention_heads: 16, num_key_value_heads: 2, intermediate_size: 512,
      vocab_size: 151936, tie_word_embeddings: false,
    });
    const { config, layout, weights } = await openModel(model);
    // GBs on disk: a cache of its own, removed with the model afterwards
    const saved = process.env['LATHE_CACHE_DIR'];
    const cacheRoot = tempDir('lathe-big-cache-');
    process.env['LATHE_CACHE_DIR'] = cacheRoot;
    let f32Bytes = 0;
    try {
      f32Bytes = weights.names().reduce((s, n) => s + 2 * weights.entry(n).byteLength, 0);
      expect(f32Bytes).toBeGreaterThan(2 ** 31);
      const dataset = await tinyDataset(model, { docs: 6, blockSize: 16 });
      const out = path.join(tempDir(), 'run');
      const s = await train({ model, dataset, out, batchSize: 1, maxSteps: 1, evalEvery: 0, evalBlocks: 1, ep: 'cpu', lora: { rank: 4 } });
      expect(s.steps).toBe(1);
      expect(Number.isFinite(s.finalLoss)).toBe(true);
      // the same train graph (conversions now cached) encodes to a few MB for GBs of weights
      const lora = buildLoraLayout(config, layout, { rank: 4, alpha: 8, dropout: 0, rslora: false, targets: 'all-linear', seed: 3 });
      const src = openWeightSource(weights);
      const tg = await buildTrainGraph(config, layout, src, lora, { batch: 1, seqLen: 16 }, { lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0, maxGradNorm: 1 });
      expect(src.cache!.written).toBe(0);
      expect(encodeModel(tg.model).byteLength).toBeLessThan(4 * 2 ** 20);
    } finally {
      await weights.close();
      if (saved === undefined) delete process.env['LATHE_CACHE_DIR'];
      else process.env['LATHE_CACHE_DIR'] = saved;
      rmSync(cacheRoot, { recursive: true, force: true });
      rmSync(path.dirname(model), { recursive: true, force: true });
    }
  }, 300_000); // 19 s on the 2-core machine at load ~9 (generation, 2.5 GB of conversions, one step); ~140 s at load ~20
});
