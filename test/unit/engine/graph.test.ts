/** The IR: shape/dtype inference, symbolic dims, lowering (determinism, dead code, external data), driver behaviour. */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { describe, expect, it } from 'vitest';
import { GraphBuilder } from '../../../src-main/engine/graph/graph';
import { defineOp, getOp } from '../../../src-main/engine/graph/ops';
import { grad, gradients } from '../../../src-main/engine/autodiff/grad';
import { lowerGraph } from '../../../src-main/engine/backends/onnx/lower';
import { encodeModel } from '../../../src-main/engine/onnx/encode';
import { softmaxCrossEntropy } from '../../../src-main/engine/nn';
import { compile, rng } from './autodiff-run';

describe('shape and dtype inference at build time', () => {
  it('broadcasts, matmuls and reshapes with symbolic dims', () => {
    const g = new GraphBuilder();
    const x = g.input('x', 'float32', ['B', 'T', 8]);
    const w = g.input('w', 'float32', [8, 4]);
    const y = g.matmul(x, w);
    expect(y.shape).toEqual(['B', 'T', 4]);
    expect(g.add(y, g.input('b', 'float32', [4])).shape).toEqual(['B', 'T', 4]);
    const flat = g.reshape(y, [-1, 4]);
    expect(flat.shape).toEqual(['B*T', 4]);
    expect(g.reduceSum(x, [1], false).shape).toEqual(['B', 8]);
    expect(g.transpose(x, [2, 0, 1]).shape).toEqual([8, 'B', 'T']);
    expect(g.split(w, [3, 5], 0).map((v) => v.shape)).toEqual([[3, 4], [5, 4]]);
    expect(g.slice(w, [1], [-1], [0]).shape).toEqual([6, 4]);
    expect(g.gather(w, g.input('ids', 'int32', ['B', 'T']), 0).shape).toEqual(['B', 'T', 4]);
    expect(g.equal(w, 0).dtype).toBe('bool');
  });

  it('rejects bad shapes and types with the op and the operands named', () => {
    const g = new GraphBuilder();
    const a = g.input('a', 'float32', [2, 3]);
    const b = g.input('b', 'float32', [4, 5]);
    expect(() => g.add(a, b)).toThrow(/Add\(a:float32\[2, 3\], b:float32\[4, 5\]\).*do not broadcast/);
    expect(() => g.matmul(a, b)).toThrow(/inner dims differ: 3 vs 4/);
    expect(() => g.add(a, g.input('i', 'int32', [2, 3]))).toThrow(/input types differ/);
    expect(() => g.reshape(a, [4, 2])).toThrow(/cannot reshape/);
    expect(() => g.exp(g.input('k', 'int64', [2]))).toThrow(/expected a float tensor/);
    expect(() => getOp('Frobnicate')).toThrow(/Unknown IR op 'Frobnicate'/);
  });

  it('folds arithmetic on scalar constants and multiplication by 1', () => {
    const g = new GraphBuilder();
    const x = g.input('x', 'float32', [3]);
    const c = g.mul(g.add(g.scalar(2, 'float32'), 3), 0.5);
    expect(c.scalar).toBe(2.5);
    expect(g.mul(x, 1)).toBe(x);
    // Transpose and Neg of small constants fold (RoPE's −sin, a constant matrix's transpose)
    const t = g.transpose(g.neg(g.constant([1, 2, 3, 4, 5, 6], 'float32', [2, 3])));
    expect(t.shape).toEqual([3, 2]);
    const data = t.constData;
    if (data?.kind !== 'raw') throw new Error('expected a folded raw constant');
    expect(Array.from(new Float32Array(data.bytes.slice().buffer))).toEqual([-1, -4, -2, -5, -3, -6]);
    expect(g.nodes.length).toBe(0);
  });

  it('shares common subexpressions and composes transposes', () => {
    const g = new GraphBuilder();
    const x = g.input('x', 'float32', [2, 3, 4]);
    expect(g.exp(x)).toBe(g.exp(x));
    const t = g.transpose(x, [1, 2, 0]);
    expect(g.transpose(t, [2, 0, 1])).toBe(x); // composes to the identity
    expect(g.nodes.length).toBe(2);
  });
});

describe('lowering', () => {
  const build = (): GraphBuilder => {
    const g = new GraphBuilder();
    const x = g.input('x', 'float32', ['B', 4]);
    const w = g.input('w', 'float32', [4, 3]);
    const h = g.tanh(g.matmul(x, w));
    g.exp(x); // dead: not an output
    const loss = g.reduceSum(g.mul(h, h), [], false);
    const { grads } = grad(g, loss, [w]);
    g.output('loss', loss);
    g.output('dw', grads[0]!);
    return g;
  };

  it('is deterministic: same graph, byte-identical model', () => {
    const a = encodeModel(lowerGraph(build()).model);
    const b = encodeModel(lowerGraph(build()).model);
    expect(Buffer.from(a).equals(Buffer.from(b))).toBe(true);
  });

  it('drops nodes that feed no output and keeps symbolic dims as dim_params', () => {
    const { model, byOp } = lowerGraph(build());
    expect(byOp.Exp).toBeUndefined();
    expect(model.graph.inputs[0]).toEqual({ name: 'x', type: 'float32', shape: ['B', 4] });
    expect(model.opsets).toEqual([{ domain: '', version: 21 }]);
  });

  it('runs with different sizes for a symbolic dim (Reshape/Expand read sizes at run time)', async () => {
    const g = new GraphBuilder();
    const x = g.input('x', 'float64', ['B', 3]);
    const m = g.reduceSum(x, [0], true); // [1, 3]
    const y = g.mul(g.sub(x, m), x); // [B, 3]
    const loss = g.reduceSum(g.reshape(y, [-1]), [0], false);
    const { grads } = grad(g, loss, [x]);
    g.output('dx', grads[0]!);
    const s = await compile(g);
    for (const B of [2, 5]) {
      const xs = Array.from({ length: B * 3 }, (_, i) => Math.sin(i + 1));
      const out = await s.run({ x: { dtype: 'float64', shape: [B, 3], data: xs } });
      // L = Σ_ij (x_ij − s_j) x_ij with s_j = Σ_k x_kj  ->  dL/dx_ij = 2 x_ij − 2 s_j
      for (let i = 0; i < B; i++) {
        for (let j = 0; j < 3; j++) {
          let col = 0;
          for (let k = 0; k < B; k++) col += xs[k * 3 + j]!;
          const want = 2 * xs[i * 3 + j]! - col - col;
          expect(out.dx![i * 3 + j]).toBeCloseTo(want, 12);
        }
      }
    }
  });

  it('a symbolic [B, T] LM-style graph (embedding, matmul, weighted xent) matches its fixed-shape twin', async () => {
    const V = 7, C = 4;
    const build = (B: number | string, T: number | string): GraphBuilder => {
      const g = new GraphBuilder();
      const ids = g.input('ids', 'int32', [B, T]);
      const targets = g.input('targets', 'int32', [B, T]);
      const weights = g.input('weights', 'float32', [B, T]);
      const emb = g.input('emb', 'float32', [V, C]);
      const w = g.input('w', 'float32', [C, V]);
      const h = g.tanh(g.gather(emb, ids, 0)); // [B, T, C]
      const logits = g.reshape(g.matmul(h, w), [-1, V]); // [B·T, V]
      const loss = softmaxCrossEntropy(g, logits, g.reshape(targets, [-1]), g.reshape(weights, [-1, 1]));
      const { grads } = grad(g, loss, [emb, w]);
      g.output('loss', loss);
      g.output('d_emb', grads[0]!);
      g.output('d_w', grads[1]!);
      return g;
    };
    const sym = await compile(build('B', 'T'));
    for (const [B, T] of [[2, 3], [1, 5]] as const) {
      const fixed = await compile(build(B, T));
      const r = rng(B * 10 + T);
      const n = B * T;
      const feeds = {
        ids: { dtype: 'int32' as const, shape: [B, T], data: Array.from({ length: n }, () => Math.floor(r() * V)) },
        targets: { dtype: 'int32' as const, shape: [B, T], data: Array.from({ length: n }, () => Math.floor(r() * V)) },
        weights: { dtype: 'float32' as const, shape: [B, T], data: Array.from({ length: n }, () => 1 / n) },
        emb: { dtype: 'float32' as const, shape: [V, C], data: Array.from({ length: V * C }, () => r() - 0.5) },
        w: { dtype: 'float32' as const, shape: [C, V], data: Array.from({ length: C * V }, () => r() - 0.5) },
      };
      const a = await sym.run(feeds);
      const b = await fixed.run(feeds);
      for (const k of ['loss', 'd_emb', 'd_w']) {
        expect(a[k]!.length).toBe(b[k]!.length);
        a[k]!.forEach((v, i) => expect(v).toBeCloseTo(b[k]![i]!, 6));
      }
      expect(Math.max(...Array.from(a.d_emb!, Math.abs))).toBeGreaterThan(0);
      await fixed.release();
    }
    await sym.release();
  });

  it('references weights in an external file by offset, without copying them', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'lathe-ir-'));
    const w = Float32Array.from([1, 2, 3, 4, 5, 6]);
    const file = Buffer.concat([Buffer.from('HEADER--'), Buffer.from(w.buffer)]);
    writeFileSync(join(dir, 'weights.bin'), file);
    const g = new GraphBuilder();
    const x = g.input('x', 'float32', [1, 2]);
    const wv = g.weight('w', 'float32', [2, 3], { kind: 'external', location: 'weights.bin', offset: 8, length: 24 });
    g.output('y', g.matmul(x, wv));
    const { model } = lowerGraph(g);
    expect(model.graph.initializers[0]!.data).toEqual({ kind: 'external', location: 'weights.bin', offset: 8, length: 24 });
    const bytes = encodeModel(model);
    expect(bytes.byteLength).toBeLessThan(400);
    writeFileSync(join(dir, 'm.onnx'), bytes);
    const s = await ort.InferenceSession.create(join(dir, 'm.onnx'));
    const out = await s.run({ x: new ort.Tensor('float32', Float32Array.from([1, 1]), [1, 2]) });
    expect(Array.from(out.y!.data as Float32Array)).toEqual([5, 7, 9]);
    await s.release();
  });

  it('names an output that is a graph input through an Identity node', () => {
    const g = new GraphBuilder();
    const x = g.input('x', 'float32', [2]);
    g.output('same', x);
    const { model } = lowerGraph(g);
    expect(model.graph.nodes).toEqual([{ op: 'Identity', name: 'n0_Identity', inputs: ['x'], outputs: ['same'] }]);
  });
});

describe('autodiff driver', () => {
  it('emits nothing for frozen weights and index paths', () => {
    const g = new GraphBuilder();
    const x = g.input('x', 'float32', [8, 16]);
    const frozen = g.input('w', 'float32', [16, 16]);
    const a = g.input('a', 'float32', [4, 16]);
    const b = g.input('b', 'float32', [16, 4]);
    const base = g.matmul(x, frozen);
    const h = g.add(base, g.matmul(g.gemm(x, a, null, { transB: true }), g.transpose(b)));
    const loss = g.reduceMean(g.mul(h, h), [], false);
    const only = gradients(g, [[loss, null]], [a, b]);
    // d loss/dh: Expand(1/n), Mul h, Mul h, Add; B-branch: Gemm(+Transpose grad); A-branch: Gemm. No node for dx or dW.
    const ops = g.countByOp(only.forwardNodes);
    console.log(`LoRA-style grads only: ${only.backwardNodes} backward nodes ${JSON.stringify(ops)}`);
    expect(only.backwardNodes).toBeLessThanOrEqual(9);
    expect(only.grads.every((v) => v)).toBe(true);
  });

  it('returns a symbolic zero for an input the loss does not depend on', () => {
    const g = new GraphBuilder();
    const x = g.input('x', 'float32', [3]);
    const y = g.input('y', 'float32', [3]);
    const loss = g.reduceSum(g.exp(x), [], false);
    const r = grad(g, loss, [x, y]);
    expect(r.grads[1]).toBeNull();
  });

  it('throws naming the op and the node when a rule is missing', () => {
    defineOp({
      name: 'TestNoRule',
      infer: (x) => [{ dtype: x[0]!.dtype, shape: [...x[0]!.shape] }],
      lower: () => undefined,
    });
    const g = new GraphBuilder();
    const x = g.input('x', 'float32', [3]);
    const y = g.apply('TestNoRule', [x])[0]!;
    const loss = g.reduceSum(y, [], false);
    expect(() => grad(g, loss, [x])).toThrow(/No gradient rule for op TestNoRule \(node #\d+ \(TestNoRule\)\)/);
  });

  it('stops at non-differentiable ops (comparisons) without asking for a rule', () => {
    const g = new GraphBuilder();
    const x = g.input('x', 'float32', [3]);
    const mask = g.greater(x, 0);
    const loss = g.reduceSum(g.where(mask, x, 0), [], false);
    expect(grad(g, loss, [x]).grads[0]).not.toBeNull();
  });

  it('needs a cotangent for a non-scalar output', () => {
    const g = new GraphBuilder();
    const x = g.input('x', 'float32', [3]);
    expect(() => grad(g, g.exp(x), [x])).toThrow(/not a scalar/);
  });
});
