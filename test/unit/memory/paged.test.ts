/**
 * Paged optimizer states: with m and v fed and fetched every step (host memory) instead of kept as
 * Program state, training is bit-identical to the resident version.
 */
import { describe, expect, it } from 'vitest';
import { openModel } from '../../../src-main/engine/models';
import { buildLoraLayout, initLoraParams } from '../../../src-main/engine/llm/lora';
import { buildTrainGraph } from '../../../src-main/engine/llm/train-graph';
import { adamwScalars } from '../../../src-main/engine/nn/layers';
import { Program } from '../../../src-main/engine/backends/onnx/program';
import { hostTensor, toNumbers } from '../../../src-main/engine/runtime/tensor';
import { PagedMoments, pagedProgramSpec } from '../../../src-main/engine/memory/paged';
import { tinyModel } from '../../helpers/tiny';

const optim = { lr: 1e-2, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0, maxGradNorm: 1 };

describe('paged optimizer states', () => {
  it('gives the same parameters and moments as GPU-resident state (CPU EP, QLoRA)', async () => {
    const dir = await tinyModel('qwen3');
    const { config, layout, weights } = await openModel(dir);
    try {
      const lora = buildLoraLayout(config, layout, { rank: 4, alpha: 8, dropout: 0, rslora: false, targets: 'all-linear', seed: 3 });
      const B = 2, T = 8, N = B * T, P = lora.size;
      const tg = await buildTrainGraph(config, layout, { weights, dir, quantize: 'nf4' }, lora, { batch: B, seqLen: T }, optim);
      const spec = { model: tg.model, state: tg.state, fetch: tg.fetch };
      expect(() => pagedProgramSpec({ ...spec, state: spec.state.filter((s) => s.name !== 'v') })).toThrow(/no "v" state slot/);
      const ids = new BigInt64Array(N).map((_, i) => BigInt(((i * 5) % 30) + 3));
      const feeds = (s: number) => ({
        ids: hostTensor('int64', [B, T], ids), targets: hostTensor('int64', [N, 1], ids.map((_, i) => ids[(i + 1) % N]!)),
        mask: hostTensor('float32', [N, 1], new Float32Array(N).fill(1)), apply: hostTensor('bool', [], new Uint8Array([1])),
        invCount: hostTensor('float32', [], [1 / N]), adam: hostTensor('float32', [3], adamwScalars(optim, s)),
      });
      const z = () => hostTensor('float32', [P], new Float32Array(P));
      const init = hostTensor('float32', [P], initLoraParams(lora, 3));

      const resident = await Program.create(spec, { ep: 'cpu', externalDataDir: dir });
      await resident.init({ params: init, m: z(), v: z(), gacc: z() });
      const lossA: number[] = [];
      for (let s = 1; s <= 4; s++) lossA.push(toNumbers((await resident.step(feeds(s))).loss_sum!)[0]!);
      const a = await resident.read(['params', 'm', 'v']);
      await resident.dispose();

      const paged = await Program.create(pagedProgramSpec(spec), { ep: 'cpu', externalDataDir: dir });
      expect(paged.info.state).toEqual(['params', 'gacc']);
      const mv = new PagedMoments(P);
      await paged.init({ params: init, gacc: z() });
      const lossB: number[] = [];
      for (let s = 1; s <= 4; s++) {
        const out = mv.take(await paged.step({ ...feeds(s), ...mv.feeds() }));
        expect(Object.keys(out).sort()).toEqual(['grad_norm', 'loss_sum']);
        lossB.push(toNumbers(out.loss_sum!)[0]!);
      }
      const b = await paged.read(['params']);
      await paged.dispose();

      expect(lossB).toEqual(lossA);
      expect(toNumbers(b.params!)).toEqual(toNumbers(a.params!));
      expect(Array.from(mv.m)).toEqual(toNumbers(a.m!));
      expect(Array.from(mv.v)).toEqual(toNumbers(a.v!));
      expect(mv.m.some((x) => x !== 0)).toBe(true);
    } finally {
      await weights.close();
    }
  });
});
