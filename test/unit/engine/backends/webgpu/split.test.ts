/**
 * Weights larger than one storage binding are split into row blocks (several buffers) instead of being
 * refused: the binding limit is lowered artificially on lavapipe and a tied embedding + lm_head graph
 * (Gather rows, Gemm with Wᵀ, and the Gemm of the backward reading W) is compared with the same graph
 * unsplit and with the CPU EP, for f32 and f16 weights (16-bit parts must not cut a word in two).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GraphBuilder } from '../../../../../src-main/engine/graph/graph';
import { gradients } from '../../../../../src-main/engine/autodiff/grad';
import { lowerGraph } from '../../../../../src-main/engine/backends/onnx/lower';
import { runModel } from '../../../../../src-main/engine/backends/onnx/session';
import { hostTensor, toNumbers } from '../../../../../src-main/engine/backends/onnx';
import { float32ToFloat16Bits } from '../../../../../src-main/engine/onnx/pack';
import { GpuProgram, closeGpu, openGpu, planGraph } from '../../../../../src-main/engine/backends/webgpu';
import { splitRows } from '../../../../../src-main/engine/backends/webgpu/plan';
import { rel, uniform as rnd } from '../../../../helpers/numeric';

/** ids [N] -> x = E[ids] · s -> logits = x·Eᵀ (tied head) -> y; and dy/ds through the head's backward Gemm. */
function tiedGraph(V: number, C: number, N: number, dtype: 'float32' | 'float16'): GraphBuilder {
  const g = new GraphBuilder();
  const w = rnd(V * C, 7, 0.5);
  const bytes = dtype === 'float32' ? new Uint8Array(w.buffer) : new Uint8Array(Uint16Array.from(w, float32ToFloat16Bits).buffer);
  let E = g.weight('embed', dtype, [V, C], { kind: 'raw', bytes });
  if (dtype === 'float16') E = g.cast(E, 'float32');
  const ids = g.input('ids', 'int64', [N]);
  const s = g.input('s', 'float32', [N, C]);
  const x = g.mul(g.gather(E, ids), s);
  const logits = g.gemm(x, E, null, { transB: true }); // [N, V]
  const gy = g.input('gy', 'float32', [N, V]);
  const { grads } = gradients(g, [[logits, gy]], [s]);
  g.output('logits', logits);
  g.output('ds', grads[0]!);
  return g;
}

beforeAll(async () => { await openGpu(); }, 60_000);
afterAll(() => closeGpu());

describe('weights split into row blocks above the binding limit', () => {
  it('splitRows: row blocks within the limit, even halves for 16-bit rows of odd length', () => {
    expect(splitRows([50, 12], 'f32', 1000, 'w')).toEqual([240, 240, 120]); // 20 rows of 48 bytes a part
    const h = splitRows([50, 13], 'f16', 1000, 'w');
    expect(h.every((e) => e % 2 === 0 || e === h[h.length - 1])).toBe(true);
    expect(h.reduce((a, b) => a + b, 0)).toBe(650);
    expect(() => splitRows([4, 1000], 'f32', 1000, 'embed')).toThrow(/one row of embed \(4000 bytes\) does not fit/);
  });

  for (const dtype of ['float32', 'float16'] as const) {
    it(`${dtype} tied embedding + lm_head: split (3+ parts) = unsplit = CPU EP`, async () => {
      const V = 200, C = 13, N = 2;
      const g = tiedGraph(V, C, N, dtype);
      const feeds = {
        ids: hostTensor('int64', [N], BigInt64Array.from([0, 199], BigInt)),
        s: hostTensor('float32', [N, C], rnd(N * C, 3)), gy: hostTensor('float32', [N, V], rnd(N * V, 4)),
      };
      const want = await runModel(lowerGraph(g).model, feeds);
      const limit = 2000; // the [200, 13] weight is 10400 (f32) / 5200 (f16) bytes; activations stay below
      const plan = planGraph(g, { maxBinding: limit });
      const parts = plan.buffers.filter((b) => b.label.startsWith('embed [part'));
      expect(parts.length).toBeGreaterThanOrEqual(3);
      for (const b of parts) expect(b.bytes).toBeLessThanOrEqual(limit);
      const results: Record<string, number[]>[] = [];
      for (const maxBindingBytes of [undefined, limit]) {
        const prog = await GpuProgram.create({ graph: g, state: [], fetch: ['logits', 'ds'] }, maxBindingBytes ? { maxBindingBytes } : {});
        try {
          const o = await prog.step(feeds);
          results.push({ logits: toNumbers(o.logits!), ds: toNumbers(o.ds!) });
        } finally {
          await prog.dispose();
        }
      }
      const [whole, split] = results as [Record<string, number[]>, Record<string, number[]>];
      for (const k of ['logits', 'ds']) {
        expect(split[k], `${k}: split vs unsplit`).toEqual(whole[k]);
        const e = rel(split[k]!, toNumbers(want[k]!));
        console.log(`${dtype} ${k}: ${parts.length} parts, split vs CPU ${e.toExponential(1)}`);
        expect(e, k).toBeLessThan(2e-6);
      }
    }, 120_000);
  }
});
