/**
 * Composite functions against the PyTorch oracle (test/oracle/engine/gen_engine.py, float64):
 * the MLP training step (loss, every gradient, 5 AdamW steps) and an attention + GPT-2 MLP block
 * with LoRA on q/v (all LoRA B non-zero, so every gradient is a real check).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { GraphBuilder, type Value } from '../../../src-main/engine/graph/graph';
import { gradients } from '../../../src-main/engine/autodiff/grad';
import { adamwScalars, buildMlpTrainStep, causalMask, linear, loraLinear, ropeCache } from '../../../src-main/engine/nn';
import { compile, type Feed } from './autodiff-run';

interface Fixture { meta: Record<string, number | string>; t: Record<string, { shape: number[]; data: number[] }> }

function readFixture(name: string): Fixture {
  const buf = readFileSync(join(__dirname, '../../oracle/engine', name));
  const magic = buf.subarray(0, 8).toString('latin1');
  if (magic !== 'LATHEFX\0') throw new Error(`${name}: bad magic ${JSON.stringify(magic)}; regenerate with gen_engine.py`);
  const version = buf.readUInt32LE(8);
  if (version !== 1) throw new Error(`${name}: fixture version ${version}, this test reads 1`);
  const hlen = buf.readUInt32LE(12);
  const header = JSON.parse(buf.subarray(16, 16 + hlen).toString('utf8'));
  const start = 16 + hlen + ((8 - ((16 + hlen) % 8)) % 8);
  const t: Fixture['t'] = {};
  for (const e of header.tensors) {
    const off = start + e.offset;
    const n = e.nbytes / 8;
    const data: number[] = [];
    for (let i = 0; i < n; i++) data.push(e.dtype === 'f64' ? buf.readDoubleLE(off + 8 * i) : Number(buf.readBigInt64LE(off + 8 * i)));
    t[e.name] = { shape: e.shape, data };
  }
  return { meta: header.meta, t };
}

/** Max |a − b| / max(1, max |b|), printed per tensor. */
function compare(name: string, got: ArrayLike<number>, want: number[], tol: number): number {
  expect(got.length, `${name}: length`).toBe(want.length);
  let maxAbs = 0, scale = 0;
  for (let i = 0; i < want.length; i++) {
    maxAbs = Math.max(maxAbs, Math.abs(got[i]! - want[i]!));
    scale = Math.max(scale, Math.abs(want[i]!));
  }
  const rel = maxAbs / Math.max(scale, 1e-12);
  console.log(`  ${name.padEnd(12)} max|Δ| ${maxAbs.toExponential(2)}  rel ${rel.toExponential(2)}`);
  expect(rel, `${name}: max difference ${maxAbs} (scale ${scale})`).toBeLessThan(tol);
  return rel;
}

describe('MLP training step vs PyTorch (silu, RMSNorm, cross-entropy, AdamW)', () => {
  const fx = readFixture('mlp.bin');
  const m = fx.meta as Record<string, number>;
  for (const dtype of ['float64', 'float32'] as const) {
    it(`${dtype}: loss, gradient and 5 AdamW steps`, async () => {
      const step = buildMlpTrainStep({
        batch: m.B!, inDim: m.D!, hidden: m.H!, classes: m.K!, dtype, normEps: m.eps!,
        adamw: { lr: m.lr!, weightDecay: m.weightDecay! }, outputGrad: true,
      });
      expect(step.paramCount).toBe(fx.t.params!.data.length);
      const s = await compile(step.graph);
      console.log(`mlp ${dtype}: ${s.nodeCount} ONNX nodes (${JSON.stringify(step.nodes)})`);
      const P = step.paramCount;
      let params = fx.t.params!.data as ArrayLike<number>;
      let mm: ArrayLike<number> = new Float64Array(P), vv: ArrayLike<number> = new Float64Array(P);
      const tol = dtype === 'float64' ? 1e-9 : 2e-5;
      const losses: number[] = [];
      for (let t = 1; t <= m.steps!; t++) {
        const feeds: Record<string, Feed> = {
          params: { dtype, shape: [P], data: params }, m: { dtype, shape: [P], data: mm }, v: { dtype, shape: [P], data: vv },
          opt: { dtype, shape: [3], data: adamwScalars({ lr: m.lr!, weightDecay: m.weightDecay! }, t) },
          x: { dtype, shape: [m.B!, m.D!], data: fx.t.x!.data }, targets: { dtype: 'int64', shape: [m.B!], data: fx.t.targets!.data },
        };
        const out = await s.run(feeds);
        if (t === 1) {
          compare('loss', out.loss!, fx.t.loss!.data, tol);
          compare('grad', out.grad!, fx.t.grad!.data, tol * 10);
        }
        losses.push(out.loss![0]!);
        params = out.params_out!;
        mm = out.m_out!;
        vv = out.v_out!;
      }
      compare('losses', losses, fx.t.losses!.data, tol);
      // Adam divides by sqrt(v): float32 gradient noise shows up larger in the parameters
      compare('params_end', params, fx.t.params_end!.data, dtype === 'float64' ? 1e-8 : 1e-3);
      await s.release();
    });
  }
});

describe('attention + GPT-2 MLP block with LoRA vs PyTorch (float64)', () => {
  it('output, loss and the gradient of every input', async () => {
    const fx = readFixture('block.bin');
    const { B, T, C, heads, scale, eps, F } = fx.meta as Record<string, number>;
    const Dh = C! / heads!;
    const N = B! * T!;
    const g = new GraphBuilder();
    const dt = 'float64';
    const names = ['x', 'norm', 'wq', 'wk', 'wv', 'wo', 'aq', 'bq', 'av', 'bv', 'ln_w', 'ln_b', 'w1', 'b1', 'w2', 'b2', 'cot'];
    const v: Record<string, Value> = {};
    for (const n of names) v[n] = g.input(n, dt, fx.t[n]!.shape);

    const x = g.reshape(v.x!, [N, C!]); // [N, C]
    const h = g.rmsNorm(x, v.norm!, eps);
    const q = loraLinear(g, h, v.wq!, v.aq!, v.bq!, scale!); // [N, C]
    const k = linear(g, h, v.wk!);
    const val = loraLinear(g, h, v.wv!, v.av!, v.bv!, scale!);
    const heads4 = (z: Value): Value => g.transpose(g.reshape(z, [B!, T!, heads!, Dh]), [0, 2, 1, 3]); // [B, H, T, Dh]
    const scores = g.add(g.mul(g.matmul(heads4(q), g.transpose(heads4(k), [0, 1, 3, 2])), 1 / Math.sqrt(Dh)), causalMask(g, T!, dt));
    const o = g.matmul(g.softmax(scores, -1), heads4(val)); // [B, H, T, Dh]
    const o2 = g.reshape(g.transpose(o, [0, 2, 1, 3]), [N, C!]);
    const x1 = g.add(x, linear(g, o2, v.wo!));
    const hm = g.gelu(linear(g, g.layerNorm(x1, v.ln_w!, v.ln_b!, 1e-5), v.w1!, v.b1!), 'tanh'); // [N, F]
    const out = g.reshape(g.add(x1, linear(g, hm, v.w2!, v.b2!)), [B!, T!, C!]);
    const loss = g.reduceSum(g.mul(out, v.cot!), [], false);
    const fwd = g.nodes.length;
    const wrt = names.filter((n) => n !== 'cot');
    const res = gradients(g, [[loss, null]], wrt.map((n) => v[n]!));
    g.output('out', out);
    g.output('loss', loss);
    res.grads.forEach((gv, i) => g.output(`grad_${wrt[i]}`, gv!));
    const s = await compile(g);
    console.log(`block: ${fwd} forward + ${res.backwardNodes} backward IR nodes, ${s.nodeCount} ONNX nodes (F=${F})`);
    const feeds: Record<string, Feed> = {};
    for (const n of names) feeds[n] = { dtype: dt, shape: fx.t[n]!.shape, data: fx.t[n]!.data };
    const got = await s.run(feeds);
    // The CPU EP computes the norm statistics in float32 even for float64 inputs (stash_type 1 is
    // the only one it has), so this float64 block agrees to ~1e-9, not 1e-15.
    compare('out', got.out!, fx.t.out!.data, 1e-7);
    compare('loss', got.loss!, fx.t.loss!.data, 1e-7);
    for (const n of wrt) compare(`grad_${n}`, got[`grad_${n}`]!, fx.t[`grad_${n}`]!.data, 1e-7);
    await s.release();
  });
});

describe('RoPE (fused RotaryEmbedding + ropeCache) vs PyTorch rotate_half (float32)', () => {
  it('output and input gradient at non-contiguous positions', async () => {
    const fx = readFixture('rope.bin');
    const { B, heads, S, D, maxPos } = fx.meta as Record<string, number>;
    const g = new GraphBuilder();
    const x = g.input('x', 'float32', [B!, heads!, S!, D!]);
    const pos = g.input('positions', 'int64', [B!, S!]);
    const cot = g.input('cot', 'float32', [B!, heads!, S!, D!]);
    const { cos, sin } = ropeCache(g, maxPos!, fx.t.inv_freq!.data, 'float32');
    const y = g.rotary(x, pos, cos, sin);
    const res = gradients(g, [[y, cot]], [x]);
    expect(res.backwardNodes).toBe(1); // −sin is folded into a constant
    g.output('y', y);
    g.output('grad_x', res.grads[0]!);
    const s = await compile(g);
    const feeds: Record<string, Feed> = {
      x: { dtype: 'float32', shape: fx.t.x!.shape, data: fx.t.x!.data },
      positions: { dtype: 'int64', shape: fx.t.positions!.shape, data: fx.t.positions!.data },
      cot: { dtype: 'float32', shape: fx.t.cot!.shape, data: fx.t.cot!.data },
    };
    const got = await s.run(feeds);
    compare('y', got.y!, fx.t.y!.data, 1e-6);
    compare('grad_x', got.grad_x!, fx.t.grad_x!.data, 1e-6);
    await s.release();
  });
});
