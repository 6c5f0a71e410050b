/**
 * Memory estimate (pure arithmetic + against measured peak RSS on the CPU EP), suggestFit's advice,
 * and out-of-memory handling: a real onnxruntime allocation failure is recognised, and an allocation
 * failure injected into a real training run ends in a plain-words UserError after a checkpoint.
 */
import { existsSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseModelConfig } from '../../../src-main/engine/models';
import { estimateMemory, NF4_BYTES_PER_PARAM, type MemoryPlan } from '../../../src-main/engine/memory/estimate';
import { suggestFit } from '../../../src-main/engine/memory/fit';
import { isOutOfMemory, outOfMemoryError, plainEngineError, refuseIfTooBig } from '../../../src-main/engine/memory/oom';
import { EngineSession } from '../../../src-main/engine/backends/onnx/session';
import { hostTensor } from '../../../src-main/engine/runtime/tensor';
import { rawTensor } from '../../../src-main/engine/onnx/pack';
import { train } from '../../../src-main/engine/train/trainer';
import { CheckpointManager } from '../../../src-main/engine/train/checkpoints';
import { UserError } from '../../../src-main/util/progress';
import { tinyDataset, tinyModel } from '../../helpers/tiny';
import { tempDir } from '../../helpers/services';
import { estimateFor, runChild } from '../../bench/memory';

/** Llama 3.1 8B's published config.json fields. */
const LLAMA_8B = parseModelConfig({
  architectures: ['LlamaForCausalLM'], model_type: 'llama', hidden_size: 4096, intermediate_size: 14336, num_hidden_layers: 32,
  num_attention_heads: 32, num_key_value_heads: 8, vocab_size: 128256, max_position_embeddings: 131072, rms_norm_eps: 1e-5,
  rope_theta: 500000, rope_scaling: { factor: 8.0, low_freq_factor: 1.0, high_freq_factor: 4.0, original_max_position_embeddings: 8192, rope_type: 'llama3' },
  hidden_act: 'silu', tie_word_embeddings: false, torch_dtype: 'bfloat16', bos_token_id: 128000, eos_token_id: 128001,
});
const GB = 2 ** 30;
// the engine materialises attention scores (no fused attention kernel), so 8B runs want short blocks
const plan: MemoryPlan = { batchSize: 2, seqLen: 512, lora: { rank: 16, targets: 'all-linear' } };

describe('estimateMemory', () => {
  it('counts Llama 3.1 8B parameters and prices weights by quantization', () => {
    const lora = estimateMemory(LLAMA_8B, plan, 'webgpu');
    const q = estimateMemory(LLAMA_8B, { ...plan, quantization: 'nf4' }, 'webgpu');
    const total = lora.params.linear + lora.params.other;
    expect(total / 1e9).toBeCloseTo(8.03, 2); // the published 8.03B
    expect(lora.params.lora).toBe(32 * 16 * (2 * 4096 + 2 * (4096 + 1024) + 2 * 4096 + 3 * (4096 + 14336)));
    expect(lora.device.weights).toBe(total * 4);
    expect(q.device.weights).toBeCloseTo(lora.params.linear * NF4_BYTES_PER_PARAM + lora.params.other * 4, 0);
    const sum = (e: typeof q) => Object.values(e.device).reduce((a, b) => a + b, 0);
    expect(sum(q)).toBe(q.deviceTotal);
    // recomputation keeps one [N, C] per layer; the logits-sized tensors (not per layer) then dominate
    expect(q.activationsWithRecompute).toBeLessThan(q.activationsWithoutRecompute / 3);
    const paged = estimateMemory(LLAMA_8B, { ...plan, quantization: 'nf4', pagedOptimizer: true }, 'webgpu');
    expect(q.device.optimizer - paged.device.optimizer).toBe(2 * lora.params.lora * 4);
    expect(paged.host).toBeGreaterThan(q.host);
    // gradient accumulation (gradAccum > 1) adds the accumulator in and out; gradAccum 1 (the default) holds none
    const accumulating = estimateMemory(LLAMA_8B, { ...plan, quantization: 'nf4', gradAccum: 4 }, 'webgpu');
    expect(q.plan.gradAccum).toBe(1);
    expect(accumulating.device.optimizer - q.device.optimizer).toBe(2 * lora.params.lora * 4);
    expect(q.device.optimizer).toBe(5 * lora.params.lora * 4); // m, v in and out + the gradient
    // lowering the batch keeps the tokens per step through accumulation, and prices its accumulator
    // (QLoRA, paged and recompute already: lowering the batch is the first change left)
    const b8: MemoryPlan = { ...plan, batchSize: 8, quantization: 'nf4', pagedOptimizer: true, recompute: true };
    const fit = suggestFit(estimateMemory(LLAMA_8B, b8, 'webgpu'), estimateMemory(LLAMA_8B, { ...b8, batchSize: 2, gradAccum: 4 }, 'webgpu').deviceTotal);
    expect(fit.fits).toBe(true);
    expect(fit.changes.map((c) => [c.setting, c.to])).toEqual([['batchSize', 2]]);
    expect([fit.estimate.plan.batchSize, fit.estimate.plan.gradAccum]).toEqual([2, 4]);
    console.log(`Llama 3.1 8B, 2×512, r16: LoRA ${(lora.deviceTotal / GB).toFixed(1)} GiB, QLoRA ${(q.deviceTotal / GB).toFixed(1)} GiB ` +
      `(weights ${(q.device.weights / GB).toFixed(1)}, activations ${(q.device.activations / GB).toFixed(1)}; with recomputation ${(q.activationsWithRecompute / GB).toFixed(1)})`);
  });

  it('matches the measured peak memory of CPU-EP runs within 15%', async () => {
    const job = {
      arch: 'qwen3', overrides: { hidden_size: 384, intermediate_size: 1024, num_hidden_layers: 4, vocab_size: 4096 },
      batch: 2, seqLen: 64, rank: 8, ep: 'cpu' as const, steps: 3,
    };
    for (const quantize of ['none', 'nf4'] as const) {
      const m = await runChild({ ...job, quantize });
      const e = estimateFor({ ...job, quantize });
      const ratio = e.deviceTotal / m.peakRss;
      console.log(`${quantize}: estimate ${(e.deviceTotal / 2 ** 20).toFixed(0)} MB, measured peak RSS ${(m.peakRss / 2 ** 20).toFixed(0)} MB, ratio ${ratio.toFixed(2)}`);
      expect(ratio).toBeGreaterThan(0.85);
      expect(ratio).toBeLessThan(1.15);
    }
  }, 60_000);
});

describe('suggestFit', () => {
  const est = estimateMemory(LLAMA_8B, plan, 'webgpu');
  it('says it fits when it does', () => {
    const s = suggestFit(est, est.deviceTotal + 1);
    expect(s).toMatchObject({ fits: true, changes: [] });
  });
  it('suggests QLoRA first, then smaller batches and contexts, in plain words', () => {
    const q = estimateMemory(LLAMA_8B, { ...plan, quantization: 'nf4' }, 'webgpu');
    const a = suggestFit(est, q.deviceTotal + GB / 4);
    expect(a.fits).toBe(true);
    expect(a.changes.map((c) => c.words)).toEqual(['use QLoRA (4-bit base weights)']);
    const b = suggestFit(q, q.deviceTotal - GB / 2); // already QLoRA: activations must shrink
    expect(b.fits).toBe(true);
    expect(b.changes[0]!.words).toMatch(/^recompute activations|^lower batch to 1|^keep optimizer states/);
    expect(b.estimate.deviceTotal).toBeLessThanOrEqual(q.deviceTotal - GB / 2);
    const c = suggestFit(est, 16 * GB);
    expect(c.fits).toBe(true);
    expect(c.changes.map((x) => x.setting)).toEqual(['quantization', 'pagedOptimizer', 'recompute']);
    expect(c.message).toMatch(/use QLoRA.*paged optimizer.*recompute activations/);
    console.log(`${(est.deviceTotal / GB).toFixed(1)} GiB into 16 GiB: ${c.message}`);
    const d = suggestFit(est, GB);
    expect(d.fits).toBe(false);
    expect(d.message).toMatch(/choose a smaller model/);
  });
});

describe('out of memory', () => {
  it('recognises a real onnxruntime allocation failure', async () => {
    // Expand to 10¹² floats: the CPU arena cannot allocate 4 TB
    const s = await EngineSession.create({
      graph: {
        name: 'oom', inputs: [{ name: 'x', type: 'float32', shape: [1] }], outputs: [{ name: 'y', type: 'float32', shape: ['n'] }],
        nodes: [{ op: 'Expand', inputs: ['x', 'shape'], outputs: ['y'] }], initializers: [rawTensor('shape', 'int64', [1], [1e12])],
      },
      opsets: [{ domain: '', version: 21 }], irVersion: 10,
    }, { ep: 'cpu' });
    let err: unknown = null;
    try {
      await s.run({ x: hostTensor('float32', [1], [1]) });
    } catch (e) {
      err = e;
    } finally {
      await s.dispose();
    }
    expect(err).not.toBeNull();
    expect(isOutOfMemory(err)).toBe(true);
    expect(isOutOfMemory(new Error('Graph input ids has the wrong shape'))).toBe(false);
    const u = outOfMemoryError(err, { model: LLAMA_8B, plan, ep: 'webgpu' });
    expect(u).toBeInstanceOf(UserError);
    expect(u.code).toBe('train.outOfMemory');
    expect(u.message).toMatch(/ran out of the GPU's memory/);
    expect(u.hint).toMatch(/^Start again with: use QLoRA/);
  });

  it('a training run hit by an allocation failure checkpoints its finished steps and says what to change', async () => {
    const model = await tinyModel('llama');
    const dataset = await tinyDataset(model);
    const out = path.join(tempDir(), 'run');
    let calls = 0;
    const inject = async () => {
      // the hook runs before each step: fail the 4th as onnxruntime's CPU arena does
      if (++calls === 4) throw new Error('Non-zero status code returned while running Gemm node. Status Message: bfc_arena.cc:360 Failed to allocate memory for requested buffer of size 1073741824');
    };
    const err = await train({ model, dataset, out, batchSize: 2, checkpointEvery: 2, maxSteps: 8, evalEvery: 0, ep: 'cpu', quantization: 'nf4' }, { checkpoint: inject })
      .then(() => null, (e: unknown) => e);
    expect(err).toBeInstanceOf(UserError);
    const u = err as UserError;
    expect(u.code).toBe('train.outOfMemory');
    expect(u.message).toMatch(/ran out of the computer's memory/);
    expect(u.message).toContain(path.join(out, 'checkpoints'));
    expect(u.hint).toMatch(/^Start again with: recompute activations/); // already QLoRA on the CPU EP
    const steps = new CheckpointManager(path.join(out, 'checkpoints')).list().map((c) => c.step);
    expect(steps).toContain(3); // the 3 finished steps are kept, not only the step-2 checkpoint
    expect(existsSync(path.join(out, 'metrics.jsonl'))).toBe(true);
    expect(readdirSync(model).filter((f) => f.startsWith('.lathe-nf4'))).toEqual([]); // the codes file is gone
  }, 60_000);
});

describe('refusals and engine errors in plain words', () => {
  it('refuses a run bigger than the memory available before any work, with the estimate and the fix', async () => {
    // a machine where only QLoRA with short blocks and recomputation fits
    const small = { ...plan, quantization: 'nf4' as const, recompute: true, seqLen: 128 };
    const budget = estimateMemory(LLAMA_8B, small, 'cpu').deviceTotal + GB;
    expect(() => refuseIfTooBig(LLAMA_8B, plan, 'cpu', budget)).toThrow(UserError);
    try {
      refuseIfTooBig(LLAMA_8B, plan, 'cpu', budget);
    } catch (e) {
      const u = e as UserError;
      expect(u.code).toBe('train.tooBig');
      expect(u.message).toMatch(/needs about \d+\.\d GB of memory \(weights .*, activations .*\), and this computer has \d+\.\d GB available, so it was not started/);
      expect(u.hint).toMatch(/^Change: use QLoRA/);
    }
    expect(() => refuseIfTooBig(LLAMA_8B, small, 'cpu', budget)).not.toThrow();
    expect(() => refuseIfTooBig(LLAMA_8B, plan, 'webgpu', GB)).not.toThrow(); // GPU memory is not known up front

    // the trainer refuses before creating anything (LATHE_MEMORY_LIMIT caps what it plans for)
    const model = await tinyModel('llama');
    const dataset = await tinyDataset(model);
    const out = path.join(tempDir(), 'run');
    process.env['LATHE_MEMORY_LIMIT'] = '20M';
    try {
      const err = await train({ model, dataset, out, batchSize: 2, maxSteps: 1, evalEvery: 0, ep: 'cpu' }).then(() => null, (e: unknown) => e);
      expect(err).toMatchObject({ name: 'UserError', code: 'train.tooBig' });
      expect((err as UserError).message).toMatch(/20\.0 MB available/);
      expect(existsSync(out)).toBe(false);
    } finally {
      delete process.env['LATHE_MEMORY_LIMIT'];
    }
  });

  it('names what happened instead of "try again" with a JavaScript message', () => {
    const big = plainEngineError(new RangeError('Invalid typed array length: 4945232523'), 'Training');
    expect(big.code).toBe('engine.outOfMemory');
    expect(big.message).toMatch(/^Training ran out of memory/);
    expect(big.hint).toMatch(/QLoRA.*shorter blocks.*recomputation/);
    const ort = plainEngineError(new Error('Could not create an onnxruntime session on the cpu EP: Load model failed'));
    expect(ort.code).toBe('engine.runtime');
    expect(ort.message).toMatch(/compute engine \(onnxruntime\) failed/);
    const bug = plainEngineError(new TypeError("Cannot read properties of undefined (reading 'shape')"));
    expect(bug.code).toBe('internal');
    expect(bug.message).toMatch(/internal error of Lathe \(TypeError: .*\)\. This is a bug/);
    for (const u of [big, ort, bug]) expect(`${u.message} ${u.hint}`).not.toMatch(/try again/i);
    const mine = new UserError('x.y', 'Plain words.', 'Do this.');
    expect(plainEngineError(mine)).toBe(mine);
  });
});
