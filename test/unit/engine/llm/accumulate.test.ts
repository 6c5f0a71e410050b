/**
 * Train graphs without a gradient accumulator (GraphShape.accumulate = false, what the trainer builds for
 * gradAccum = 1): no `gacc` input, state slot or output, and 4·P bytes less GPU state; each run's gradient
 * feeds AdamWStep directly. They must train bit for bit as the accumulating graph does when its gacc starts
 * at zero and every run applies (the formulation gradAccum = 1 used before), on the CPU EP and on the GPU
 * backend (resident and paged moments), for SFT and preference graphs; and the trainer with gradAccum = 1
 * must resume exactly (its checkpoints hold params, m, v as before: no accumulator is ever saved).
 */
import { afterAll, describe, expect, it } from 'vitest';
import path from 'node:path';
import { buildTrainGraph, type TrainGraph } from '../../../../src-main/engine/llm/train-graph';
import { buildPreferenceTrainGraph, type PreferenceLoss } from '../../../../src-main/engine/llm/preference-graph';
import { Program, hostTensor, type HostTensor } from '../../../../src-main/engine/backends/onnx';
import { GpuProgram, closeGpu, planGraph } from '../../../../src-main/engine/backends/webgpu';
import { PagedMoments, pagedProgramSpec, pagedSlots } from '../../../../src-main/engine/memory/paged';
import { adamwScalars } from '../../../../src-main/engine/nn/layers';
import { train } from '../../../../src-main/engine/train/trainer';
import { MetricsLog } from '../../../../src-main/engine/train/metrics';
import { CheckpointManager } from '../../../../src-main/engine/train/checkpoints';
import { loraStart, loraStepFixture, stepFeeds, type StepRunner } from '../../../helpers/lora-step';
import { stopAfter, tinyDataset, tinyModel } from '../../../helpers/tiny';
import { tempDir } from '../../../helpers/services';

const optim = { lr: 1e-2, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01, maxGradNorm: 1 };
const DPO: PreferenceLoss = { method: 'dpo', beta: 0.1, loss: 'sigmoid', labelSmoothing: 0, orpoLambda: 0 };
const B = 2, T = 8, STEPS = 4;

afterAll(() => closeGpu());

interface Trace { losses: number[]; norms: number[]; params: Float32Array; m: Float32Array; v: Float32Array }

/** `STEPS` applying runs from p0 (zero moments; zero gacc where the graph has one); paged: m, v fed and fetched. */
async function trace(p: StepRunner, tg: TrainGraph, p0: Float32Array, feeds: (s: number) => Record<string, HostTensor>, paged = false): Promise<Trace> {
  const P = p0.length;
  const z = () => hostTensor('float32', [P], new Float32Array(P));
  const hasGacc = tg.state.some((s) => s.name === 'gacc');
  const moments = paged ? new PagedMoments(P) : null;
  await p.init({ params: hostTensor('float32', [P], p0), ...(paged ? {} : { m: z(), v: z() }), ...(hasGacc ? { gacc: z() } : {}) });
  const losses: number[] = [], norms: number[] = [];
  for (let s = 1; s <= STEPS; s++) {
    const raw = await p.step({ ...feeds(s), ...(moments?.feeds() ?? {}) });
    const o = moments ? moments.take(raw) : raw;
    losses.push(Number(o.loss_sum!.data[0]));
    norms.push(Number(o.grad_norm!.data[0]));
  }
  const st = await p.read(paged ? ['params'] : ['params', 'm', 'v']);
  await p.dispose();
  const f = (t: HostTensor | undefined) => t!.data as Float32Array;
  return { losses, norms, params: f(st.params), m: moments ? moments.m : f(st.m), v: moments ? moments.v : f(st.v) };
}

function expectSameBits(got: Trace, want: Trace): void {
  expect(got.losses).toEqual(want.losses);
  expect(got.norms).toEqual(want.norms);
  for (const k of ['params', 'm', 'v'] as const) expect(Buffer.from(got[k].buffer).equals(Buffer.from(want[k].buffer)), k).toBe(true);
}

const noGacc = (tg: TrainGraph) => {
  expect(tg.state.map((s) => s.name)).toEqual(['params', 'm', 'v']);
  expect(tg.graph.inputs.map((v) => v.name)).not.toContain('gacc');
  expect(tg.graph.outputs.map((o) => o.name)).not.toContain('gacc_out');
};

describe('train graphs without a gradient accumulator (gradAccum = 1)', () => {
  it('SFT: no gacc state; CPU EP and GPU backend (resident, paged) train bit for bit as accumulating onto a zero gacc', async () => {
    const { dir, config, layout, weights, lora } = await loraStepFixture('llama', { prefix: 'lathe-noacc-' });
    const p0 = loraStart(lora), P = lora.size;
    const feeds = stepFeeds(B, T, optim, { masked: [3] });
    const apply = (s: number) => feeds(s, true);
    const build = (fused: boolean, accumulate?: boolean) =>
      buildTrainGraph(config, layout, { weights, dir }, lora, { batch: B, seqLen: T, fused, ...(accumulate === undefined ? {} : { accumulate }) }, optim);

    // CPU EP: the plain graph
    const [cpuOld, cpuNew] = [await build(false), await build(false, false)];
    expect(cpuOld.state.map((s) => s.name)).toEqual(['params', 'm', 'v', 'gacc']); // (the default accumulates)
    noGacc(cpuNew);
    expect(cpuNew.model.graph.inputs.map((i) => i.name)).not.toContain('gacc');
    expect(cpuNew.model.graph.outputs.map((o) => o.name)).not.toContain('gacc_out');
    const cpu = async (tg: TrainGraph, paged = false) => trace(await Program.create(paged ? pagedProgramSpec({ model: tg.model, state: tg.state, fetch: tg.fetch }) : { model: tg.model, state: tg.state, fetch: tg.fetch },
      { ep: 'cpu', externalDataDir: dir }), tg, p0, apply, paged);
    const cpuWant = await cpu(cpuOld);
    expect(cpuWant.losses.at(-1)!).toBeLessThan(cpuWant.losses[0]!); // it trains
    expectSameBits(await cpu(cpuNew), cpuWant);
    expectSameBits(await cpu(cpuNew, true), cpuWant);

    // GPU backend: the fused graph; the plan's state is params, m, v (3·4P bytes), nothing of [P] more allocated
    const [gpuOld, gpuNew] = [await build(true), await build(true, false)];
    noGacc(gpuNew);
    const planOf = (tg: TrainGraph) => planGraph(tg.graph, { outputs: [...tg.fetch, ...tg.state.map((s) => s.output)], state: tg.state.map((s) => s.input) });
    const [planOld, planNew] = [planOf(gpuOld), planOf(gpuNew)];
    expect(planOld.bytes.state).toBe(16 * P);
    expect(planNew.bytes.state).toBe(12 * P);
    const total = (p: ReturnType<typeof planGraph>) => Object.values(p.bytes).reduce((a, b) => a + b, 0);
    expect(total(planOld) - total(planNew)).toBeGreaterThanOrEqual(4 * P);
    const gpu = async (tg: TrainGraph, paged = false) => {
      const prog = await GpuProgram.create({ graph: tg.graph, ...(paged ? pagedSlots(tg) : { state: tg.state, fetch: tg.fetch }) }, { externalDataDir: dir });
      expect(prog.info.state).toEqual(tg.state.map((s) => s.name).filter((n) => !paged || (n !== 'm' && n !== 'v')));
      return trace(prog, tg, p0, apply, paged);
    };
    const gpuWant = await gpu(gpuOld);
    expectSameBits(await gpu(gpuNew), gpuWant);
    expectSameBits(await gpu(gpuNew, true), gpuWant);
    expectSameBits(await gpu(gpuOld, true), gpuWant);
    // (and the backends agree as before)
    cpuWant.losses.forEach((l, i) => expect(Math.abs(gpuWant.losses[i]! - l) / l).toBeLessThan(1e-5));
    await weights.close();
  }, 600_000);

  it('DPO: no gacc state; CPU EP and GPU backend train bit for bit as accumulating onto a zero gacc', async () => {
    const { dir, config, layout, weights, lora } = await loraStepFixture('llama', { prefix: 'lathe-noacc-pref-' });
    const p0 = loraStart(lora);
    const pairs = 2, R = 2 * pairs, N = R * T;
    const ids = new BigInt64Array(N), targets = new BigInt64Array(N), mask = new Float32Array(N);
    for (let i = 0; i < N; i++) { ids[i] = BigInt(((i * 11) % 40) + 3); targets[i] = ids[(i + 1) % N]!; mask[i] = i % T >= 3 ? 1 : 0; }
    const feeds = (s: number): Record<string, HostTensor> => ({
      ids: hostTensor('int64', [R, T], ids), targets: hostTensor('int64', [N, 1], targets), mask: hostTensor('float32', [N, 1], mask),
      pairs: hostTensor('float32', [pairs], new Float32Array(pairs).fill(1)),
      apply: hostTensor('bool', [], new Uint8Array([1])), invCount: hostTensor('float32', [], new Float32Array([1 / pairs])),
      adam: hostTensor('float32', [3], Float32Array.from(adamwScalars(optim, s))),
    });
    const build = (fused: boolean, accumulate?: boolean) =>
      buildPreferenceTrainGraph(config, layout, { weights, dir }, lora, { pairs, seqLen: T, fused, ...(accumulate === undefined ? {} : { accumulate }) }, DPO, optim);
    const [cpuOld, cpuNew] = [await build(false), await build(false, false)];
    noGacc(cpuNew);
    const cpu = async (tg: TrainGraph) => trace(await Program.create({ model: tg.model, state: tg.state, fetch: tg.fetch }, { ep: 'cpu', externalDataDir: dir }), tg, p0, feeds);
    const cpuWant = await cpu(cpuOld);
    expectSameBits(await cpu(cpuNew), cpuWant);
    const [gpuOld, gpuNew] = [await build(true), await build(true, false)];
    noGacc(gpuNew);
    const gpu = async (tg: TrainGraph) => trace(await GpuProgram.create({ graph: tg.graph, state: tg.state, fetch: tg.fetch }, { externalDataDir: dir }), tg, p0, feeds);
    expectSameBits(await gpu(gpuNew), await gpu(gpuOld));
    await weights.close();
  }, 600_000);
});

describe('trainer with gradAccum 1 (no accumulator)', () => {
  it('resumes exactly as an uninterrupted run, and across resident and paged moments (CPU EP)', async () => {
    const model = await tinyModel('llama');
    const dataset = await tinyDataset(model);
    const base = { model, dataset, batchSize: 2, gradAccum: 1, maxSteps: 6, evalEvery: 0, checkpointEvery: 3, optim: { lr: 5e-3 }, ep: 'cpu' as const, schedule: { warmupSteps: 2 } };
    const latest = async (dir: string) => (await new CheckpointManager(path.join(dir, 'checkpoints')).latest())!;
    const full = path.join(tempDir(), 'full');
    await train({ ...base, out: full });
    const split = path.join(tempDir(), 'split');
    await train({ ...base, out: split }, { checkpoint: stopAfter(3) }).catch(() => undefined);
    expect(new CheckpointManager(path.join(split, 'checkpoints')).list().map((c) => c.step)).toEqual([3]);
    const b = await train({ ...base, out: split });
    expect(b.resumedFrom).toBe(3);
    const lossesOf = (dir: string) => new Map(MetricsLog.read(path.join(dir, 'metrics.jsonl')).filter((r) => r.kind === 'train').map((r) => [r.step, r['loss']]));
    const la = lossesOf(full), lb = lossesOf(split);
    for (let s = 1; s <= 6; s++) expect(lb.get(s)).toBe(la.get(s));
    const a = await latest(full);
    expect([...a.tensors.keys()].sort()).toEqual(['m', 'params', 'v']);
    for (const k of ['params', 'm', 'v']) expect(Buffer.from((await latest(split)).tensors.get(k)!.buffer).equals(Buffer.from(a.tensors.get(k)!.buffer))).toBe(true);
    // a paged run stopped after 3 steps, finished with resident moments
    const mixed = path.join(tempDir(), 'mixed');
    await train({ ...base, out: mixed, pagedOptimizer: true }, { checkpoint: stopAfter(3) }).catch(() => undefined);
    await train({ ...base, out: mixed });
    expect(Buffer.from((await latest(mixed)).tensors.get('params')!.buffer).equals(Buffer.from(a.tensors.get('params')!.buffer))).toBe(true);
  }, 600_000);
});
