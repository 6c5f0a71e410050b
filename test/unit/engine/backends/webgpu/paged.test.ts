/**
 * The paged optimizer on Lathe's GPU backend (memory/paged.ts): AdamW's m and v are per-step feeds and
 * m_out / v_out fetches instead of resident state (m_out, v_out are views of AdamWStep's packed [4P]
 * output, fetched at their offsets); m and v are written into host (mappable) upload buffers and copied
 * into the step's buffer pool just before the optimizer reads them. Paged and resident runs of the same fused train step must leave
 * identical parameters and moments after 3 steps.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import path from 'node:path';
import { openModel } from '../../../../../src-main/engine/models';
import { buildLoraLayout, initLoraParams } from '../../../../../src-main/engine/llm/lora';
import { buildTrainGraph } from '../../../../../src-main/engine/llm/train-graph';
import { hostTensor } from '../../../../../src-main/engine/backends/onnx';
import { adamwScalars } from '../../../../../src-main/engine/nn/layers';
import { GpuProgram, closeGpu, expectedDevice, gpuUnsupported, openGpu, planGraph } from '../../../../../src-main/engine/backends/webgpu';
import { GraphBuilder } from '../../../../../src-main/engine/graph/graph';
import { PagedMoments, pagedSlots } from '../../../../../src-main/engine/memory/paged';
import { createTinyModel } from '../../../../../src-main/engine/models/tiny';
import { openWeightSource } from '../../../../../src-main/engine/weights/source';
import { tempDir } from '../../../../helpers/services';

const optim = { lr: 1e-2, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01, maxGradNorm: 1 };

beforeAll(async () => { await openGpu(); }, 60_000);
afterAll(() => closeGpu());

describe('paged optimizer on the GPU backend', () => {
  it('gives the resident run\'s parameters and moments bit for bit; m and v leave the GPU state', async () => {
    const dir = path.join(tempDir('lathe-gpu-paged-'), 'llama');
    await createTinyModel('llama', dir, { seed: 1 });
    const { config, layout, weights } = await openModel(dir);
    const lora = buildLoraLayout(config, layout, { rank: 4, alpha: 8, dropout: 0, rslora: false, targets: 'all-linear', seed: 3 });
    const B = 2, T = 8, N = B * T, P = lora.size;
    const tg = await buildTrainGraph(config, layout, openWeightSource(weights), lora, { batch: B, seqLen: T, fused: true }, optim);
    const p0 = initLoraParams(lora, 3);
    for (const m of lora.modules) for (let i = 0; i < m.outFeatures * lora.rank; i++) p0[m.bOffset + i] = 0.02 * Math.sin(i + m.bOffset);
    const ids = new BigInt64Array(N), targets = new BigInt64Array(N), mask = new Float32Array(N).fill(1);
    for (let i = 0; i < N; i++) ids[i] = BigInt(((i * 7) % 40) + 3);
    for (let i = 0; i < N; i++) targets[i] = ids[(i + 1) % N]!;
    const feeds = (s: number) => ({
      ids: hostTensor('int64', [B, T], ids), targets: hostTensor('int64', [N, 1], targets), mask: hostTensor('float32', [N, 1], mask),
      apply: hostTensor('bool', [], new Uint8Array([1])), invCount: hostTensor('float32', [], new Float32Array([1 / N])),
      adam: hostTensor('float32', [3], Float32Array.from(adamwScalars(optim, s))),
    });
    const z = () => hostTensor('float32', [P], new Float32Array(P));

    const resident = await GpuProgram.create({ graph: tg.graph, state: tg.state, fetch: tg.fetch }, { externalDataDir: dir });
    await resident.init({ params: hostTensor('float32', [P], p0), m: z(), v: z(), gacc: z() });
    const rLoss: number[] = [];
    for (let s = 1; s <= 3; s++) rLoss.push(Number((await resident.step(feeds(s))).loss_sum!.data[0]));
    const r = await resident.read();

    const paged = await GpuProgram.create({ graph: tg.graph, ...pagedSlots(tg) }, { externalDataDir: dir });
    expect(paged.info.state).toEqual(['params', 'gacc']);
    expect(paged.info.feeds).toEqual(expect.arrayContaining(['m', 'v']));
    const moments = new PagedMoments(P);
    await paged.init({ params: hostTensor('float32', [P], p0), gacc: z() });
    const pLoss: number[] = [];
    for (let s = 1; s <= 3; s++) {
      const out = moments.take(await paged.step({ ...feeds(s), ...moments.feeds() }));
      expect(Object.keys(out).sort()).toEqual(['grad_norm', 'loss_sum']);
      pLoss.push(Number(out.loss_sum!.data[0]));
    }
    const p = await paged.read();
    console.log(`paged plan bytes ${JSON.stringify(paged.info.bytes)}; resident ${JSON.stringify(resident.info.bytes)}; P = ${P}`);
    // m and v are no longer state (−2·4P) and get no input buffers of their own: they live in host upload
    // buffers and, on the GPU, in pool buffers from the optimizer on (activations are dead by then)
    const total = (b: Record<string, number>) => Object.values(b).reduce((x, y) => x + y, 0);
    expect(resident.info.bytes.state - paged.info.bytes.state).toBe(2 * 4 * P);
    expect(paged.info.bytes.input).toBe(resident.info.bytes.input);
    expect(paged.plan.late!.map((l) => l.name).sort()).toEqual(['m', 'v']);
    expect(paged.plan.late!.every((l) => paged.plan.dispatches[l.at]!.name.startsWith('AdamW'))).toBe(true);
    // m' and v' are written in place over the pool buffers m and v are copied into and fetched from there; those
    // buffers live to the step's end but reuse buffers of activations dead by then (assignTemporaries): at least one
    // of them is a buffer an earlier dispatch used for another tensor
    const reused = (name: string) => {
      const { buf } = paged.plan.inputs.get(name)!.ref;
      const at = paged.plan.late!.find((l) => l.name === name)!.at;
      return paged.plan.dispatches.slice(0, at).some((d) => d.bindings.some((b) => b.ref.buf === buf));
    };
    expect(reused('m') || reused('v')).toBe(true);
    // GPU memory saved: on this tiny model the [P] moments are larger than most activations, so 1.25·4P of the 2·4P
    // (planned at real shapes: the full 2·4P, BENCHMARKS.md); it saved nothing before outputs could reuse dead buffers
    const saved = total(resident.info.bytes) - total(paged.info.bytes);
    expect(saved).toBeGreaterThanOrEqual(4 * P);
    expect(saved).toBeLessThanOrEqual(2 * 4 * P);
    await resident.dispose();
    await paged.dispose();
    await weights.close();

    expect(pLoss).toEqual(rLoss);
    expect(p.params!.data).toEqual(r.params!.data);
    expect(moments.m).toEqual(r.m!.data);
    expect(moments.v).toEqual(r.v!.data);
    expect(moments.m.some((x) => x !== 0) && p.params!.data.some((x, i) => x !== p0[i])).toBe(true);
  }, 300_000);

  it('plan: a host-kept input has no buffer of its own; it takes a freed pool buffer at its first reader', () => {
    const g = new GraphBuilder();
    const x = g.input('x', 'float32', [256]);
    const m = g.input('m', 'float32', [256]);
    const t = g.tanh(x); // three temporaries live at once, all dead before m is read
    const s = g.reduceSum(g.add(t, g.exp(t)), [0], true);
    g.output('y', g.add(g.mul(m, 0.5), s));
    const resident = planGraph(g, { noFusion: true });
    const p = planGraph(g, { noFusion: true, late: ['m'] });
    expect(p.bytes.input).toBe(resident.bytes.input - 256 * 4);
    const ref = p.inputs.get('m')!.ref;
    expect(ref.buf.kind).toBe('temp');
    const at = p.late![0]!.at;
    expect(p.late).toEqual([{ name: 'm', at }]);
    // the dispatch at `at` reads m (through a read_write binding: m·0.5 is written over m, its last reader); earlier
    // dispatches used the buffer for other values
    expect(p.dispatches[at]!.bindings.some((b) => b.ref.buf === ref.buf)).toBe(true);
    expect(p.dispatches.slice(0, at).some((d) => d.bindings.some((b) => b.ref.buf === ref.buf))).toBe(true);
    // no m-sized buffer added: m sits in a freed one (the lifetime allocator may add a scalar's 4 bytes elsewhere)
    expect(p.bytes.temp).toBeLessThan(resident.bytes.temp + 256 * 4);
  });

  it('the backend takes preference tuning, the paged optimizer and f16 compute', () => {
    expect(gpuUnsupported({ method: 'dpo', pagedOptimizer: true })).toBeNull();
    expect(gpuUnsupported({ method: 'orpo', quantization: 'nf4' })).toBeNull();
    expect(gpuUnsupported({ compute: 'float16' })).toBeNull();
    expect(expectedDevice('gpu', true, gpuUnsupported({ method: 'dpo', pagedOptimizer: true })).reason).toMatch(/GPU \(Lathe\): Lathe's own GPU kernels/);
  });
});
