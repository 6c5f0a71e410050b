/**
 * Preference tuning (DPO, ORPO) on Lathe's GPU backend: the fused preference step graph (flash attention,
 * fused norm backwards, the per-token log-probs as LinearCrossEntropy rows: the lm_head GEMM and the per-row nll
 * by vocabulary chunks) on the GPU against the
 * decomposed graph on onnxruntime's CPU EP: loss, the per-row log-probs (policy and reference), the reward
 * metrics the trainer reports, every LoRA gradient, then three AdamW steps (f32, relative 1e-5).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildPreferenceTrainGraph, type PreferenceLoss } from '../../../../../src-main/engine/llm/preference-graph';
import { RewardStats, type PairBatch } from '../../../../../src-main/engine/train/preference';
import { Program, hostTensor } from '../../../../../src-main/engine/backends/onnx';
import { adamwScalars } from '../../../../../src-main/engine/nn/layers';
import { GpuProgram, closeGpu, openGpu } from '../../../../../src-main/engine/backends/webgpu';
import { openWeightSource } from '../../../../../src-main/engine/weights/source';
import { rel } from '../../../../helpers/numeric';
import { formatErrors, loraStart, loraStepFixture, runSteps, stepErrors, stepState } from '../../../../helpers/lora-step';

const optim = { lr: 1e-2, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01, maxGradNorm: 1 };
const DPO: PreferenceLoss = { method: 'dpo', beta: 0.5, loss: 'sigmoid', labelSmoothing: 0.1, orpoLambda: 0 };
const ORPO: PreferenceLoss = { method: 'orpo', beta: 0, loss: 'sigmoid', labelSmoothing: 0, orpoLambda: 0.5 };

beforeAll(async () => { await openGpu(); }, 60_000);
afterAll(() => closeGpu());

describe('preference step (DPO, ORPO): GPU backend vs CPU EP (f32)', () => {
  const cases = [
    { arch: 'llama', loss: DPO, recompute: false }, { arch: 'llama', loss: ORPO, recompute: false },
    { arch: 'gpt2', loss: DPO, recompute: false }, { arch: 'gpt2', loss: ORPO, recompute: false },
    { arch: 'qwen2', loss: DPO, recompute: true },
    // bf16 weights referenced in the file on the GPU (as the trainer builds it), f32 conversions on the CPU EP
    { arch: 'llama', loss: ORPO, recompute: false, bf16: true },
  ];
  for (const { arch, loss, recompute, bf16 } of cases) {
    it(`${arch} ${loss.method.toUpperCase()}${recompute ? ' (recompute)' : ''}${bf16 ? ' (bf16 weights)' : ''}: loss, log-probs, rewards, gradients and 3 AdamW steps agree`, async () => {
      const { dir, config, layout, weights, lora } = await loraStepFixture(arch, { prefix: 'lathe-gpu-pref-', ...(bf16 ? { dtype: 'bf16' as const } : {}) });
      const Pp = 2, R = 2 * Pp, T = 8, N = R * T;
      const src = openWeightSource(weights);
      const shape = { pairs: Pp, seqLen: T, recompute };
      const tg = await buildPreferenceTrainGraph(config, layout, src, lora, shape, loss, optim);
      const tgGpu = await buildPreferenceTrainGraph(config, layout, bf16 ? { weights, dir, bf16InPlace: true } : src, lora, { ...shape, fused: true }, loss, optim);
      const ops = new Set(tgGpu.graph.nodes.map((n) => n.op));
      // the per-token log-probs straight from the head's input (LinearCrossEntropy rows: no [N, V] logits)
      expect(ops.has('LinearCrossEntropy') && ops.has('LinearCrossEntropyGrad') && ops.has('FlashAttention')).toBe(true);
      expect(ops.has('SoftmaxCrossEntropyRows')).toBe(false);
      expect(ops.has('ReduceLogSumExp')).toBe(false);
      const init = stepState(loraStart(lora));
      // pair p: rows p (chosen) and Pp + p (rejected) share a 3-token prompt; the completions differ;
      // positions 0..2 predict prompt tokens (mask 0), the rest completion tokens
      const ids = new BigInt64Array(N), targets = new BigInt64Array(N), mask = new Float32Array(N), tokens = new Float32Array(R);
      for (let r = 0; r < R; r++) {
        for (let t = 0; t < T; t++) ids[r * T + t] = BigInt(t < 3 ? 5 + t + (r % Pp) : ((r * 11 + t * 7) % 40) + 3);
        const len = T - (r === 1 ? 2 : 0); // one shorter completion (padding at the end)
        for (let t = 0; t + 1 < len; t++) {
          targets[r * T + t] = ids[r * T + t + 1]!;
          if (t >= 2) { mask[r * T + t] = 1; tokens[r]!++; }
        }
      }
      const batch: PairBatch = { ids, targets, mask, weights: new Float32Array(Pp).fill(1), tokens, count: Pp };
      const feeds = (s: number, apply: boolean) => ({
        ids: hostTensor('int64', [R, T], ids), targets: hostTensor('int64', [N, 1], targets), mask: hostTensor('float32', [N, 1], mask),
        pairs: hostTensor('float32', [Pp], batch.weights),
        apply: hostTensor('bool', [], new Uint8Array([apply ? 1 : 0])), invCount: hostTensor('float32', [], new Float32Array([1 / Pp])),
        adam: hostTensor('float32', [3], Float32Array.from(adamwScalars(optim, s))),
        ...(recompute ? { recompute_one: hostTensor('float32', [], [1]) } : {}),
      });
      const run = async (p: Program | GpuProgram) => {
        const r = await runSteps(p, init, feeds);
        const o = r.out;
        const logps = Array.from(o.logps!.data as Float32Array), ref = o.ref_logps ? Array.from(o.ref_logps.data as Float32Array) : null;
        const stats = new RewardStats(loss);
        stats.add(batch, logps, ref);
        return { ...r, logps, ref, metrics: stats.result() };
      };
      const want = await run(await Program.create({ model: tg.model, state: tg.state, fetch: tg.fetch }, { ep: 'cpu', threads: 1, externalDataDir: src.dir }));
      const gpu = await GpuProgram.create({ graph: tgGpu.graph, state: tgGpu.state, fetch: tgGpu.fetch }, { externalDataDir: dir });
      const info = gpu.info;
      const got = await run(gpu);
      await weights.close();
      const mk = Object.keys(want.metrics);
      const e = {
        ...stepErrors(got, want), logps: rel(got.logps, want.logps), ref: want.ref ? rel(got.ref!, want.ref) : 0,
        metrics: rel(mk.map((k) => got.metrics[k]!), mk.map((k) => want.metrics[k]!)),
      };
      console.log(`${arch} ${loss.method}${recompute ? ' recompute' : ''}: ${info.dispatches} dispatches, GPU bytes ${JSON.stringify(info.bytes)}; ${formatErrors(e)}`);
      expect(want.grad.some((x) => x !== 0)).toBe(true);
      expect(e.loss).toBeLessThan(1e-5);
      expect(e.logps).toBeLessThan(1e-5);
      expect(e.ref).toBeLessThan(1e-5);
      expect(e.metrics).toBeLessThan(1e-5);
      expect(e.grad).toBeLessThan(1e-5);
      expect(e.losses).toBeLessThan(1e-5);
      expect(rel(got.norms.slice(0, 1), want.norms.slice(0, 1))).toBeLessThan(1e-5);
      // later norms follow AdamW updates (judged as a whole below, as train-step.test.ts does)
      expect(e.norms).toBeLessThan(1e-4);
      expect(e.update).toBeLessThan(1e-3);
    }, 300_000);
  }
});
