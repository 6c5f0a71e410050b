/**
 * NF4 in graphs: the in-graph dequantization + Gemm (and its gradient, which dequantizes again) against
 * host arithmetic; QLoRA vs LoRA loss curves on tiny llama / qwen3 / gpt2 (CPU EP); base-weight bits per
 * parameter counted from the lowered model; the QLoRA step placed fully on WebGPU (no CPU fallback).
 */
import { describe, expect, it } from 'vitest';
import { GraphBuilder } from '../../../src-main/engine/graph/graph';
import { gradients } from '../../../src-main/engine/autodiff/grad';
import { lowerGraph } from '../../../src-main/engine/backends/onnx/lower';
import { openModel } from '../../../src-main/engine/models';
import { buildLoraLayout, initLoraParams } from '../../../src-main/engine/llm/lora';
import { buildTrainGraph } from '../../../src-main/engine/llm/train-graph';
import { adamwScalars } from '../../../src-main/engine/nn/layers';
import { probeEp } from '../../../src-main/engine/backends/onnx/ep';
import { Program } from '../../../src-main/engine/backends/onnx/program';
import { reportPlacement, describeFallback } from '../../../src-main/engine/backends/onnx/placement';
import { runModel } from '../../../src-main/engine/backends/onnx/session';
import { hostTensor, toNumbers } from '../../../src-main/engine/runtime/tensor';
import { dequantizeNf4, quantizeNf4 } from '../../../src-main/engine/quant/nf4';
import { nf4Gemm, nf4Storage, placeNf4 } from '../../../src-main/engine/quant/graph';
import { Rng } from '../../../src-main/engine/models/rng';
import { tinyModel } from '../../helpers/tiny';
import { Nf4FileStore } from '../../../src-main/engine/quant/store';
import { useNf4Store } from '../../../src-main/engine/quant/linear';
import { encodeModel } from '../../../src-main/engine/onnx/encode';

const optim = { lr: 1e-2, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0, maxGradNorm: 1 };

function randn(n: number, seed: number, scale = 1): Float32Array {
  const r = new Rng(seed);
  return Float32Array.from({ length: n }, () => (r.next() * 2 - 1) * scale);
}

describe('Nf4Gemm', () => {
  for (const transB of [true, false]) {
    it(`y = x·W${transB ? 'ᵀ' : ''} and dx match host dequantization`, async () => {
      const N = 5, IN = 64, OUT = 24; // IN·OUT not a multiple of 64·256: exercises the padding slices
      const shape = transB ? [OUT, IN] : [IN, OUT];
      const q = quantizeNf4(randn(IN * OUT, 11, 0.1), shape);
      const W = dequantizeNf4(q);
      const g = new GraphBuilder();
      const x = g.input('x', 'float32', [N, IN]);
      const gy = g.input('gy', 'float32', [N, OUT]);
      const y = nf4Gemm(g, x, placeNf4(g, 'w', q), null, transB);
      const { grads } = gradients(g, [[y, gy]], [x]);
      g.output('y', y);
      g.output('dx', grads[0]!);
      const xv = randn(N * IN, 5), gv = randn(N * OUT, 6);
      const o = await runModel(lowerGraph(g).model, { x: hostTensor('float32', [N, IN], xv), gy: hostTensor('float32', [N, OUT], gv) });
      const Wt = (o_: number, i: number) => (transB ? W[o_ * IN + i]! : W[i * OUT + o_]!); // W' [in -> out]
      let dy = 0, dd = 0;
      const yv = toNumbers(o.y!), dxv = toNumbers(o.dx!);
      for (let r = 0; r < N; r++) {
        for (let o_ = 0; o_ < OUT; o_++) {
          let s = 0;
          for (let i = 0; i < IN; i++) s += xv[r * IN + i]! * Wt(o_, i);
          dy = Math.max(dy, Math.abs(s - yv[r * OUT + o_]!));
        }
        for (let i = 0; i < IN; i++) {
          let s = 0;
          for (let o_ = 0; o_ < OUT; o_++) s += gv[r * OUT + o_]! * Wt(o_, i);
          dd = Math.max(dd, Math.abs(s - dxv[r * IN + i]!));
        }
      }
      expect(dy).toBeLessThan(1e-5);
      expect(dd).toBeLessThan(1e-5);
    });
  }
});

describe('Nf4Gemm with a C input (the backward\'s gradient sums)', () => {
  const N = 5, IN = 64, OUT = 24;
  const q = quantizeNf4(randn(IN * OUT, 12, 0.1), [OUT, IN]);
  it('y = x·Wᵀ + C matches host arithmetic; dC = gy, dx as without C', async () => {
    const W = dequantizeNf4(q);
    const g = new GraphBuilder();
    const x = g.input('x', 'float32', [N, IN]);
    const c = g.input('c', 'float32', [N, OUT]);
    const gy = g.input('gy', 'float32', [N, OUT]);
    const y = nf4Gemm(g, x, placeNf4(g, 'w', q), null, true, c);
    const { grads } = gradients(g, [[y, gy]], [x, c]);
    expect(grads[1]).toBe(gy); // dC is the cotangent itself, no node
    g.output('y', y);
    g.output('dx', grads[0]!);
    const xv = randn(N * IN, 5), cv = randn(N * OUT, 7), gv = randn(N * OUT, 6);
    const o = await runModel(lowerGraph(g).model, { x: hostTensor('float32', [N, IN], xv), c: hostTensor('float32', [N, OUT], cv), gy: hostTensor('float32', [N, OUT], gv) });
    const yv = toNumbers(o.y!), dxv = toNumbers(o.dx!);
    let dy = 0, dd = 0;
    for (let r = 0; r < N; r++) {
      for (let o_ = 0; o_ < OUT; o_++) {
        let s = cv[r * OUT + o_]!;
        for (let i = 0; i < IN; i++) s += xv[r * IN + i]! * W[o_ * IN + i]!;
        dy = Math.max(dy, Math.abs(s - yv[r * OUT + o_]!));
      }
      for (let i = 0; i < IN; i++) {
        let s = 0;
        for (let o_ = 0; o_ < OUT; o_++) s += gv[r * OUT + o_]! * W[o_ * IN + i]!;
        dd = Math.max(dd, Math.abs(s - dxv[r * IN + i]!));
      }
    }
    expect(dy).toBeLessThan(1e-5);
    expect(dd).toBeLessThan(1e-5);
  });

  it('autodiff sums fan-out gradients through it: dx of x read by two NF4 projections is one Nf4Gemm taking the other as C, no Add', async () => {
    const g = new GraphBuilder();
    const x = g.input('x', 'float32', [N, IN]);
    const w1 = placeNf4(g, 'w1', q), w2 = placeNf4(g, 'w2', quantizeNf4(randn(IN * OUT, 13, 0.1), [OUT, IN]));
    const g1 = g.input('g1', 'float32', [N, OUT]), g2 = g.input('g2', 'float32', [N, OUT]);
    const y1 = nf4Gemm(g, x, w1, null, true), y2 = nf4Gemm(g, x, w2, null, true);
    const { grads, forwardNodes } = gradients(g, [[y1, g1], [y2, g2]], [x]);
    const back = g.nodes.slice(forwardNodes);
    expect(back.filter((n) => n.op === 'Add')).toHaveLength(0);
    const dx = grads[0]!.node!;
    expect(dx.op).toBe('Nf4Gemm');
    // summed in forward order: y1's dx first, then y2's Nf4Gemm takes it as C
    expect(dx.inputs[0]).toBe(g2);
    expect(dx.inputs[8]?.node?.op).toBe('Nf4Gemm');
    expect(dx.inputs[8]?.node?.inputs[0]).toBe(g1);
    // = the two gradients summed by an Add (the CPU EP runs both)
    g.output('dx', grads[0]!);
    const sep = g.add(nf4Gemm(g, g1, w1, null, false), nf4Gemm(g, g2, w2, null, false));
    g.output('sep', sep);
    const f = (n: number, s: number) => hostTensor('float32', [N, n], randn(N * n, s));
    const o = await runModel(lowerGraph(g).model, { x: f(IN, 1), g1: f(OUT, 2), g2: f(OUT, 3) });
    const a = toNumbers(o.dx!), b = toNumbers(o.sep!);
    expect(Math.max(...a.map((v, i) => Math.abs(v - b[i]!)))).toBeLessThan(1e-5);
  });

  it('rejects a C beside a bias, and a C of another shape or type, naming the op', () => {
    const g = new GraphBuilder();
    const x = g.input('x', 'float32', [N, IN]);
    const w = placeNf4(g, 'w', q);
    const b = g.input('b', 'float32', [OUT]);
    expect(() => nf4Gemm(g, x, w, b, true, g.input('c', 'float32', [N, OUT]))).toThrow(/bias or a C input, not both/);
    expect(() => nf4Gemm(g, x, w, null, true, g.input('c2', 'float32', [N, OUT + 1]))).toThrow(/Nf4Gemm: C must be float32\[5, 24\]/);
    expect(() => nf4Gemm(g, x, w, null, true, g.input('c3', 'float16', [N, OUT]))).toThrow(/Nf4Gemm: C must be float32/);
  });
});

describe('QLoRA vs LoRA on tiny models (CPU EP)', () => {
  const STEPS = 8;
  for (const arch of ['llama', 'qwen3', 'gpt2', 'phi3', 'olmo2']) {
    it(`${arch}: loss curves within 2% of LoRA, base weights ≤ 4.2 bits per parameter`, async () => {
      const dir = await tinyModel(arch);
      const { config, layout, weights } = await openModel(dir);
      try {
        const lora = buildLoraLayout(config, layout, { rank: 4, alpha: 8, dropout: 0, rslora: false, targets: 'all-linear', seed: 3 });
        const B = 2, T = 16, N = B * T, P = lora.size;
        const ids = new BigInt64Array(N), targets = new BigInt64Array(N);
        for (let i = 0; i < N; i++) ids[i] = BigInt(((i * 7) % 40) + 3);
        for (let i = 0; i < N; i++) targets[i] = ids[(i + 1) % N]!;
        const losses: Record<string, number[]> = {};
        for (const quantize of ['none', 'nf4'] as const) {
          const tg = await buildTrainGraph(config, layout, { weights, dir, quantize }, lora, { batch: B, seqLen: T }, optim);
          if (quantize === 'nf4') {
            const st = nf4Storage(tg.model);
            const linearParams = lora.modules.reduce((s, m) => s + m.inFeatures * m.outFeatures, 0);
            const bits = (8 * st.bytes) / st.params;
            console.log(`${arch}: ${st.params} base linear parameters in ${st.bytes} bytes = ${bits.toFixed(3)} bits/parameter`);
            expect(st.params).toBeGreaterThanOrEqual(linearParams); // every adapted linear weight is NF4 (+ padding)
            expect(bits).toBeLessThanOrEqual(4.2);
          }
          const p = await Program.create({ model: tg.model, state: tg.state, fetch: tg.fetch }, { ep: 'cpu', externalDataDir: dir });
          try {
            const z = () => hostTensor('float32', [P], new Float32Array(P));
            await p.init({ params: hostTensor('float32', [P], initLoraParams(lora, 3)), m: z(), v: z(), gacc: z() });
            const curve: number[] = [];
            for (let s = 1; s <= STEPS; s++) {
              const o = await p.step({
                ids: hostTensor('int64', [B, T], ids), targets: hostTensor('int64', [N, 1], targets),
                mask: hostTensor('float32', [N, 1], new Float32Array(N).fill(1)),
                apply: hostTensor('bool', [], new Uint8Array([1])), invCount: hostTensor('float32', [], [1 / N]),
                adam: hostTensor('float32', [3], adamwScalars(optim, s)),
              });
              curve.push(toNumbers(o.loss_sum!)[0]! / N);
            }
            losses[quantize] = curve;
          } finally {
            await p.dispose();
          }
        }
        const lo = losses.none!, ql = losses.nf4!;
        const rel = Math.max(...lo.map((l, i) => Math.abs(l - ql[i]!) / l));
        console.log(`${arch}: LoRA ${lo.map((l) => l.toFixed(3)).join(' ')}\n${arch}: QLoRA ${ql.map((l) => l.toFixed(3)).join(' ')}\n${arch}: max rel diff ${rel.toExponential(2)}`);
        expect(ql[STEPS - 1]!).toBeLessThan(ql[0]!); // QLoRA learns
        expect(rel).toBeGreaterThan(0); // the weights really are quantized
        expect(rel).toBeLessThan(0.02);
      } finally {
        await weights.close();
      }
    });
  }
});

describe('NF4 codes in an external file', () => {
  it('trains the same as codes inside the model, which then holds no code bytes', async () => {
    const dir = await tinyModel('gpt2');
    const { config, layout, weights } = await openModel(dir);
    try {
      const lora = buildLoraLayout(config, layout, { rank: 4, alpha: 8, dropout: 0, rslora: false, targets: 'all-linear', seed: 3 });
      const B = 1, T = 8, N = B * T, P = lora.size;
      const ids = new BigInt64Array(N).map((_, i) => BigInt(((i * 7) % 40) + 3));
      const losses: number[][] = [];
      const sizes: number[] = [];
      for (const external of [false, true]) {
        const src = { weights, dir, quantize: 'nf4' as const };
        const store = external ? new Nf4FileStore(dir) : null;
        if (store) useNf4Store(src, store);
        const tg = await buildTrainGraph(config, layout, src, lora, { batch: B, seqLen: T }, optim);
        store?.close();
        sizes.push(encodeModel(tg.model).byteLength);
        if (store) expect(store.bytes).toBeGreaterThanOrEqual(nf4Storage(tg.model).bytes - 4096); // codes + absmax codes, aligned
        const p = await Program.create({ model: tg.model, state: tg.state, fetch: tg.fetch }, { ep: 'cpu', externalDataDir: dir });
        store?.remove(); // the session has the data; the file can go
        try {
          const z = () => hostTensor('float32', [P], new Float32Array(P));
          await p.init({ params: hostTensor('float32', [P], initLoraParams(lora, 3)), m: z(), v: z(), gacc: z() });
          const curve: number[] = [];
          for (let s = 1; s <= 3; s++) {
            const o = await p.step({
              ids: hostTensor('int64', [B, T], ids), targets: hostTensor('int64', [N, 1], ids.map((_, i) => ids[(i + 1) % N]!)),
              mask: hostTensor('float32', [N, 1], new Float32Array(N).fill(1)), apply: hostTensor('bool', [], new Uint8Array([1])),
              invCount: hostTensor('float32', [], [1 / N]), adam: hostTensor('float32', [3], adamwScalars(optim, s)),
            });
            curve.push(toNumbers(o.loss_sum!)[0]!);
          }
          losses.push(curve);
        } finally {
          await p.dispose();
        }
      }
      expect(losses[1]).toEqual(losses[0]);
      const st = (await buildTrainGraph(config, layout, { weights, dir, quantize: 'nf4' }, lora, { batch: B, seqLen: T }, optim)).model;
      expect(sizes[0]! - sizes[1]!).toBeGreaterThan(0.9 * nf4Storage(st).bytes - 8192);
    } finally {
      await weights.close();
    }
  });
});

describe('QLoRA step on WebGPU', () => {
  it('places every node of the llama QLoRA train step on the WebGPU EP and matches the CPU EP', async () => {
    const gpu = await probeEp('webgpu');
    if (!gpu.ok) throw new Error(`WebGPU is not available: ${gpu.reason}. Install Mesa 25 lavapipe (mesa-vulkan-drivers from bookworm-backports).`);
    const dir = await tinyModel('llama');
    const { config, layout, weights } = await openModel(dir);
    try {
      const lora = buildLoraLayout(config, layout, { rank: 4, alpha: 8, dropout: 0, rslora: false, targets: 'all-linear', seed: 3 });
      const tg = await buildTrainGraph(config, layout, { weights, dir, quantize: 'nf4' }, lora, { batch: 1, seqLen: 8 }, optim);
      const r = await reportPlacement(tg.model, { ep: 'webgpu', externalDataDir: dir, disableCpuFallback: true });
      expect(r.allOnEp, describeFallback(r)).toBe(true);
      expect(r.fallback).toEqual([]);
      // three steps on each EP, state GPU-resident on WebGPU (cold lavapipe shader compiles: ~20 s)
      const B = 1, T = 8, N = B * T, P = lora.size;
      const ids = new BigInt64Array(N).map((_, i) => BigInt(((i * 7) % 40) + 3));
      const curves: Record<string, number[]> = {};
      for (const ep of ['cpu', 'webgpu'] as const) {
        const p = await Program.create({ model: tg.model, state: tg.state, fetch: tg.fetch }, { ep, externalDataDir: dir, disableCpuFallback: ep === 'webgpu' });
        try {
          const z = () => hostTensor('float32', [P], new Float32Array(P));
          await p.init({ params: hostTensor('float32', [P], initLoraParams(lora, 3)), m: z(), v: z(), gacc: z() });
          curves[ep] = [];
          for (let s = 1; s <= 3; s++) {
            const o = await p.step({
              ids: hostTensor('int64', [B, T], ids), targets: hostTensor('int64', [N, 1], ids.map((_, i) => ids[(i + 1) % N]!)),
              mask: hostTensor('float32', [N, 1], new Float32Array(N).fill(1)), apply: hostTensor('bool', [], new Uint8Array([1])),
              invCount: hostTensor('float32', [], [1 / N]), adam: hostTensor('float32', [3], adamwScalars(optim, s)),
            });
            curves[ep]!.push(toNumbers(o.loss_sum!)[0]!);
          }
        } finally {
          await p.dispose();
        }
      }
      const rel = Math.max(...curves.cpu!.map((l, i) => Math.abs(l - curves.webgpu![i]!) / l));
      console.log(`QLoRA llama CPU ${curves.cpu!.join(' ')} / WebGPU ${curves.webgpu!.join(' ')}: max rel diff ${rel.toExponential(1)}`);
      expect(rel).toBeLessThan(1e-5);
    } finally {
      await weights.close();
    }
  });
});
