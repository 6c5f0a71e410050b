/**
 * The preference-tuning graphs (engine/llm/preference-graph.ts) against the PyTorch fixtures of
 * test/oracle/preference (DPO sigmoid, label smoothing, IPO, ORPO; rsLoRA on qwen2), fp32 on the CPU EP:
 * loss, per-row log-probs (policy and reference), every LoRA gradient (B non-zero) and 10 AdamW steps.
 * Plus: with B = 0 the adapter is off, policy = reference, and the first DPO loss is ln 2.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createTinyModel, openModel } from '../../../../src-main/engine/models';
import { buildPreferenceEvalGraph, buildPreferenceTrainGraph, type PreferenceLoss } from '../../../../src-main/engine/llm/preference-graph';
import { buildLoraLayout, initLoraParams } from '../../../../src-main/engine/llm/lora';
import { adamwScalars } from '../../../../src-main/engine/nn/layers';
import { EngineSession } from '../../../../src-main/engine/backends/onnx/session';
import { hostTensor, toNumbers } from '../../../../src-main/engine/runtime/tensor';
import { packLora as pack, readModelFixture, relativeError, weightsSha256, type ModelFixture } from './fixture';

const DIR = path.resolve(__dirname, '../../../oracle/preference/fixtures');
const names = readdirSync(DIR).filter((f) => f.endsWith('.fixture')).map((f) => f.slice(0, -8)).sort();

let dir: string;
beforeAll(() => { dir = mkdtempSync(path.join(tmpdir(), 'lathe-pref-parity-')); });
afterAll(() => { rmSync(dir, { recursive: true, force: true }); });

interface Hp { method: 'dpo' | 'orpo'; loss: 'sigmoid' | 'ipo'; beta: number; label_smoothing: number; orpo_lambda: number }
const lossOf = (hp: Hp): PreferenceLoss => ({ method: hp.method, loss: hp.loss, beta: hp.beta, labelSmoothing: hp.label_smoothing, orpoLambda: hp.orpo_lambda });
const OPTIM = (h: ModelFixture['header']) => ({ lr: h.adamw.lr, beta1: h.adamw.beta1, beta2: h.adamw.beta2, eps: h.adamw.eps, weightDecay: h.adamw.weight_decay, maxGradNorm: h.adamw.max_grad_norm });

describe('preference fixtures exist', () => {
  it('covers DPO, label smoothing, IPO, ORPO and rsLoRA', () => {
    expect(names).toEqual(['llama-dpo', 'llama-dpo-smooth', 'llama-ipo', 'llama-orpo', 'qwen2-dpo-rslora']);
  });
});

describe.each(names.map((n) => [n]))('preference graph vs PyTorch: %s', (name) => {
  it('loss, log-probs, every LoRA gradient and 10 AdamW steps match (fp32, CPU EP)', async () => {
    const fx = readModelFixture(path.join(DIR, `${name}.fixture`));
    const h = fx.header as ModelFixture['header'] & { preference: Hp };
    const out = path.join(dir, name);
    await createTinyModel(h.model.arch, out, { seed: h.model.seed, dtype: h.model.dtype });
    expect(weightsSha256(out)).toBe(h.model_sha256);
    const { config, layout, weights } = await openModel(out);
    const sessions: EngineSession[] = [];
    try {
      const R = h.batch, P = R / 2, T = h.time, N = R * T;
      const loss = lossOf(h.preference);
      const lora = buildLoraLayout(config, layout, { rank: h.lora.rank, alpha: h.lora.alpha, rslora: h.lora.rslora, dropout: 0, targets: 'all-linear', seed: 0 });
      expect(lora.modules.map((m) => m.module)).toEqual(h.lora.targets.map((t) => t.module));
      const src = { weights, dir: out };
      const base = {
        ids: hostTensor('int64', [R, T], fx.i32('input_ids')),
        targets: hostTensor('int64', [N, 1], fx.i32('labels')),
        mask: hostTensor('float32', [N, 1], fx.f32('loss_mask')),
        pairs: hostTensor('float32', [P], new Float32Array(P).fill(1)),
      };
      const p0 = pack(fx, lora, 'lora');

      const ev = await EngineSession.create((await buildPreferenceEvalGraph(config, layout, src, lora, { pairs: P, seqLen: T }, loss)).model, { ep: 'cpu', threads: 2, externalDataDir: out });
      sessions.push(ev);
      const r = await ev.run({ ...base, params: hostTensor('float32', [lora.size], p0) });
      const evalLoss = toNumbers(r.loss_sum!)[0]! / P;
      const eLogps = relativeError(toNumbers(r.logps!), fx.f32('logps'));
      const eRef = loss.method === 'dpo' ? relativeError(toNumbers(r.ref_logps!), fx.f32('ref_logps')) : 0;

      const optim = OPTIM(h);
      const tg = await buildPreferenceTrainGraph(config, layout, src, lora, { pairs: P, seqLen: T }, loss, optim);
      const tr = await EngineSession.create(tg.model, { ep: 'cpu', threads: 2, externalDataDir: out });
      sessions.push(tr);
      const zeros = new Float32Array(lora.size);
      const feed = (params: Float32Array, m: Float32Array, v: Float32Array, apply: boolean, step: number) => ({
        ...base,
        apply: hostTensor('bool', [], [apply ? 1 : 0]),
        invCount: hostTensor('float32', [], [1 / P]),
        adam: hostTensor('float32', [3], adamwScalars(optim, step)),
        params: hostTensor('float32', [lora.size], params), m: hostTensor('float32', [lora.size], m),
        v: hostTensor('float32', [lora.size], v), gacc: hostTensor('float32', [lora.size], zeros),
      });
      const gr = await tr.run(feed(p0, zeros, zeros, false, 1));
      const grad = Float32Array.from(toNumbers(gr.gacc_out!), (x) => x / P);
      const gRef = pack(fx, lora, 'grad');
      let worst = 0, worstName = '';
      for (const m of lora.modules) {
        for (const [off, n, tag] of [[m.aOffset, lora.rank * m.inFeatures, 'A'], [m.bOffset, m.outFeatures * lora.rank, 'B']] as const) {
          const e = relativeError(grad.subarray(off, off + n), gRef.subarray(off, off + n));
          if (e > worst) { worst = e; worstName = `${m.module}.${tag}`; }
        }
      }
      let params: Float32Array = p0, mom: Float32Array = zeros, vel: Float32Array = zeros;
      const losses: number[] = [];
      for (let s = 1; s <= h.adamw.steps; s++) {
        const o = await tr.run(feed(params, mom, vel, true, s));
        losses.push(toNumbers(o.loss_sum!)[0]! / P);
        params = o.params_out!.data as Float32Array;
        mom = o.m_out!.data as Float32Array;
        vel = o.v_out!.data as Float32Array;
      }
      const eLoss = Math.abs(evalLoss - fx.f32('loss')[0]!) / Math.abs(fx.f32('loss')[0]!);
      const eLosses = relativeError(losses, fx.f32('adamw_losses'));
      const final = pack(fx, lora, 'final');
      const eUpdate = relativeError(params.map((x, i) => x - p0[i]!), final.map((x, i) => x - p0[i]!));
      console.log(`${name}: loss rel ${eLoss.toExponential(2)}, logps ${eLogps.toExponential(2)}, ref ${eRef.toExponential(2)}, worst grad ${worst.toExponential(2)} (${worstName}), ` +
        `adam losses ${eLosses.toExponential(2)} (${losses.map((x) => x.toFixed(4)).join(' ')}), update ${eUpdate.toExponential(2)}`);
      expect(eLoss).toBeLessThan(1e-4);
      expect(eLogps).toBeLessThan(1e-5);
      expect(eRef).toBeLessThan(1e-5);
      expect(worst).toBeLessThan(1e-4);
      expect(eLosses).toBeLessThan(1e-4);
      expect(eUpdate).toBeLessThan(1e-3);
    } finally {
      for (const s of sessions) await s.dispose();
      await weights.close();
    }
  });
});

describe('DPO at the start of training', () => {
  it('the first loss is ln 2 exactly when B = 0 (adapter off: policy = reference), and B gets a gradient', async () => {
    const out = path.join(dir, 'b0');
    await createTinyModel('llama', out, { seed: 0, dtype: 'f32' });
    const { config, layout, weights } = await openModel(out);
    try {
      const fx = readModelFixture(path.join(DIR, 'llama-dpo.fixture'));
      const R = fx.header.batch, P = R / 2, T = fx.header.time, N = R * T;
      const lora = buildLoraLayout(config, layout, { rank: 4, alpha: 8, rslora: false, dropout: 0, targets: 'all-linear', seed: 7 });
      const p0 = initLoraParams(lora, 7); // A random, B = 0
      for (const loss of [
        { method: 'dpo', loss: 'sigmoid', beta: 0.1, labelSmoothing: 0, orpoLambda: 0 },
        { method: 'dpo', loss: 'sigmoid', beta: 0.5, labelSmoothing: 0.1, orpoLambda: 0 },
      ] as PreferenceLoss[]) {
        const optim = { lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0, maxGradNorm: 1 };
        const tg = await buildPreferenceTrainGraph(config, layout, { weights, dir: out }, lora, { pairs: P, seqLen: T }, loss, optim);
        const s = await EngineSession.create(tg.model, { ep: 'cpu', threads: 2, externalDataDir: out });
        try {
          const z = new Float32Array(lora.size);
          const o = await s.run({
            ids: hostTensor('int64', [R, T], fx.i32('input_ids')), targets: hostTensor('int64', [N, 1], fx.i32('labels')),
            mask: hostTensor('float32', [N, 1], fx.f32('loss_mask')), pairs: hostTensor('float32', [P], new Float32Array(P).fill(1)),
            apply: hostTensor('bool', [], [0]), invCount: hostTensor('float32', [], [1 / P]), adam: hostTensor('float32', [3], adamwScalars(optim, 1)),
            params: hostTensor('float32', [lora.size], p0), m: hostTensor('float32', [lora.size], z), v: hostTensor('float32', [lora.size], z), gacc: hostTensor('float32', [lora.size], z),
          });
          const l = toNumbers(o.loss_sum!)[0]! / P;
          expect(toNumbers(o.logps!)).toEqual(toNumbers(o.ref_logps!)); // the same forward, bit for bit
          expect(Math.abs(l - Math.LN2)).toBeLessThan(1e-7);
          const g = toNumbers(o.gacc_out!);
          const m0 = lora.modules[0]!;
          const gB = g.slice(m0.bOffset, m0.bOffset + m0.outFeatures * lora.rank);
          const gA = g.slice(m0.aOffset, m0.aOffset + lora.rank * m0.inFeatures);
          expect(Math.max(...gB.map(Math.abs))).toBeGreaterThan(0); // B learns from the first step
          expect(Math.max(...gA.map(Math.abs))).toBe(0); // and A's gradient is exactly zero while B = 0
        } finally {
          await s.dispose();
        }
      }
    } finally {
      await weights.close();
    }
  });
});
