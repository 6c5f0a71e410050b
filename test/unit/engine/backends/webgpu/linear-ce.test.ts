/**
 * LinearCrossEntropy (the lm_head GEMM + cross-entropy by vocabulary chunks) on Lathe's GPU backend: a tied f16
 * embedding / head split into row blocks (chunks that straddle the parts), soft-capped and scaled, gives the
 * unsplit run's and the CPU EP's loss and dx; and its plan holds no [N, V] buffer.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GraphBuilder } from '../../../../../src-main/engine/graph/graph';
import { gradients } from '../../../../../src-main/engine/autodiff/grad';
import { lowerGraph } from '../../../../../src-main/engine/backends/onnx/lower';
import { runModel } from '../../../../../src-main/engine/backends/onnx/session';
import { hostTensor, toNumbers } from '../../../../../src-main/engine/runtime/tensor';
import { float32ToFloat16Bits } from '../../../../../src-main/engine/onnx/pack';
import { GpuProgram, closeGpu, openGpu, planGraph } from '../../../../../src-main/engine/backends/webgpu';
import { rel, uniform as rnd } from '../../../../helpers/numeric';

const V = 300, C = 17, N = 6;

/** ids -> x = E[ids] · s -> loss = LinearCrossEntropy(x, E) (tied head); outputs the loss and ds. */
function graph(chunk: number): GraphBuilder {
  const g = new GraphBuilder();
  g.fused = true;
  const w = rnd(V * C, 11, 0.6);
  const E = g.cast(g.weight('embed', 'float16', [V, C], { kind: 'raw', bytes: new Uint8Array(Uint16Array.from(w, float32ToFloat16Bits).buffer) }), 'float32');
  const ids = g.input('ids', 'int64', [N]);
  const s = g.input('s', 'float32', [N, C]);
  const x = g.mul(g.gather(E, ids), s);
  const t = g.input('targets', 'int64', [N, 1]);
  const m = g.input('mask', 'float32', [N, 1]);
  const loss = g.apply('LinearCrossEntropy', [x, E, t, m], { scale: 0.8, softcap: 4, chunk })[0]!;
  const { grads } = gradients(g, [[loss, null]], [s]);
  g.output('loss', loss);
  g.output('ds', grads[0]!);
  return g;
}

beforeAll(async () => { await openGpu(); }, 60_000);
afterAll(() => closeGpu());

describe('LinearCrossEntropy on the GPU backend', () => {
  it('split f16 head (4+ parts, 7 chunks) = unsplit = CPU EP; no [N, V] buffer', async () => {
    const g = graph(45);
    const feeds = {
      ids: hostTensor('int64', [N], BigInt64Array.from([0, 299, 17, 150, 151, 2], BigInt)),
      s: hostTensor('float32', [N, C], rnd(N * C, 3)),
      targets: hostTensor('int64', [N, 1], BigInt64Array.from([299, 0, 44, 45, 90, 200], BigInt)),
      mask: hostTensor('float32', [N, 1], Float32Array.from([1, 0.5, 1, 0, 1, 1])),
    };
    const want = await runModel(lowerGraph(g).model, feeds);
    const limit = 2600; // the [300, 17] f16 weight is 10200 bytes: 4 parts
    const plan = planGraph(g, { maxBinding: limit });
    expect(plan.buffers.filter((b) => b.label.startsWith('embed [part')).length).toBeGreaterThanOrEqual(4);
    const act = plan.buffers.filter((b) => b.kind === 'temp' || b.kind === 'output');
    expect(Math.max(...act.map((b) => b.bytes))).toBeLessThan(4 * N * V / 2);
    const results: Record<string, number[]>[] = [];
    for (const maxBindingBytes of [undefined, limit]) {
      const prog = await GpuProgram.create({ graph: g, state: [], fetch: ['loss', 'ds'] }, maxBindingBytes ? { maxBindingBytes } : {});
      try {
        const o = await prog.step(feeds);
        results.push({ loss: toNumbers(o.loss!), ds: toNumbers(o.ds!) });
      } finally {
        await prog.dispose();
      }
    }
    const [whole, split] = results as [Record<string, number[]>, Record<string, number[]>];
    for (const k of ['loss', 'ds']) {
      expect(split[k], `${k}: split vs unsplit`).toEqual(whole[k]);
      const e = rel(split[k]!, toNumbers(want[k]!));
      console.log(`LinearCrossEntropy ${k}: split vs CPU ${e.toExponential(1)} (first value ${split[k]![0]})`);
      expect(e, k).toBeLessThan(2e-6);
    }
  }, 120_000);
});
