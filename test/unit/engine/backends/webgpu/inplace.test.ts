/**
 * Results written over an input the kernel reads last (GPU memory, issue 18 item 7): elementwise kernels
 * (kernels/elementwise.ts overwrittenInput) and a Gemm's C (kernels/matmul.ts inPlaceC: QLoRA's LoRA term
 * added to the Nf4Gemm base result). Plans (fewer buffers) and device runs against float64 references.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GraphBuilder } from '../../../../../src-main/engine/graph/graph';
import { hostTensor } from '../../../../../src-main/engine/runtime/tensor';
import { GpuProgram, closeGpu, openGpu, planGraph } from '../../../../../src-main/engine/backends/webgpu';

const M = 16, K = 8, N = 32;
const values = (n: number, seed: number) => Float32Array.from({ length: n }, (_, i) => Math.fround(0.5 * Math.sin(i * 1.7 + seed)));

/** sqrt(tanh(x)·exp(x) + 1): tanh(x), exp(x) live together; the Mul and the Add and the Sqrt each read their input last. */
function elementwiseGraph(): GraphBuilder {
  const g = new GraphBuilder();
  const x = g.input('x', 'float32', [M, N]);
  g.output('y', g.sqrt(g.add(g.mul(g.tanh(x), g.exp(x)), g.constant(1, 'float32'))));
  return g;
}

/** x·w2 + tanh(x·w1): the Gemm reads C = tanh(x·w1) last and writes its result over it. */
function gemmGraph(w1: Float32Array, w2: Float32Array): GraphBuilder {
  const g = new GraphBuilder();
  const x = g.input('x', 'float32', [M, K]);
  const c = g.tanh(g.matmul(x, g.constant(w1, 'float32', [K, N])));
  g.output('y', g.gemm(x, g.constant(w2, 'float32', [K, N]), c));
  return g;
}

beforeAll(async () => { await openGpu(); }, 60_000);
afterAll(() => closeGpu());

describe('GPU kernels writing over an input they read last', () => {
  it('plan: an elementwise chain (unfused) needs two [M, N] buffers, not three', () => {
    const p = planGraph(elementwiseGraph(), { noFusion: true });
    // tanh(x) and exp(x) are live together; the product, the sum and the root are written over the product's inputs
    expect(p.bytes.temp + p.bytes.output).toBe(2 * M * N * 4);
    const mul = p.dispatches.find((d) => d.name === 'Mul')!;
    const written = mul.bindings.filter((b) => b.write).map((b) => b.ref.buf);
    expect(written).toHaveLength(1);
    expect(mul.bindings.filter((b) => !b.write).map((b) => b.ref.buf)).not.toContain(written[0]);
    expect(p.outputs.get('y')!.ref.buf).toBe(written[0]);
  });

  it('plan: a Gemm whose C it reads last writes over C', () => {
    const p = planGraph(gemmGraph(values(K * N, 1), values(K * N, 2)), { noFusion: true });
    const gemm = p.dispatches.find((d) => d.name === 'Gemm')!;
    const tanh = p.dispatches.find((d) => d.name === 'Tanh')!;
    const c = tanh.bindings.find((b) => b.write)!.ref.buf;
    // C is bound once, read_write, and holds the result
    expect(gemm.bindings.filter((b) => b.ref.buf === c).map((b) => b.write)).toEqual([true]);
    expect(p.outputs.get('y')!.ref.buf).toBe(c);
  });

  it('device: the in-place results equal float64 references', async () => {
    const x1 = values(M * N, 3);
    const e = await GpuProgram.create({ graph: elementwiseGraph(), state: [], fetch: ['y'] }, { noFusion: true });
    const y1 = (await e.step({ x: hostTensor('float32', [M, N], x1) })).y!.data as Float32Array;
    await e.dispose();
    let worst = 0;
    x1.forEach((v, i) => { worst = Math.max(worst, Math.abs(y1[i]! - Math.sqrt(Math.tanh(v) * Math.exp(v) + 1))); });
    expect(worst).toBeLessThan(1e-5);

    const w1 = values(K * N, 1), w2 = values(K * N, 2), x2 = values(M * K, 4);
    const gp = await GpuProgram.create({ graph: gemmGraph(w1, w2), state: [], fetch: ['y'] }, { noFusion: true });
    expect(gp.plan.outputs.get('y')!.ref.buf).toBe(gp.plan.dispatches.find((d) => d.name === 'Tanh')!.bindings.find((b) => b.write)!.ref.buf);
    const y2 = (await gp.step({ x: hostTensor('float32', [M, K], x2) })).y!.data as Float32Array;
    await gp.dispose();
    worst = 0;
    for (let i = 0; i < M; i++) {
      for (let j = 0; j < N; j++) {
        let a = 0, b = 0;
        for (let k = 0; k < K; k++) { a += x2[i * K + k]! * w1[k * N + j]!; b += x2[i * K + k]! * w2[k * N + j]!; }
        worst = Math.max(worst, Math.abs(y2[i * N + j]! - (b + Math.tanh(a))));
      }
    }
    expect(worst).toBeLessThan(1e-5);
  }, 120_000);
});
