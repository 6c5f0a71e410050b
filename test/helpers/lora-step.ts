/**
 * The LoRA train-step fixture the GPU-backend tests share (test/unit/engine/backends/webgpu/): a tiny model and
 * its LoRA layout, the start parameters, the feeds of a step, a runner of one accumulate-only micro-batch then
 * AdamW steps, the errors of one run against another, and trainer runs' per-step metrics.
 */
import path from 'node:path';
import { openModel } from '../../src-main/engine/models';
import { createTinyModel, type TinyModelOptions } from '../../src-main/engine/models/tiny';
import { buildLoraLayout, initLoraParams, type LoraLayout } from '../../src-main/engine/llm/lora';
import { hostTensor, type HostTensor } from '../../src-main/engine/backends/onnx';
import { adamwScalars } from '../../src-main/engine/nn/layers';
import { train } from '../../src-main/engine/train/trainer';
import { GpuProgram, type GpuContext, type GpuProgramInfo, type GpuProgramOptions, type GpuProgramSpec } from '../../src-main/engine/backends/webgpu';
import { chooseGemm } from '../../src-main/engine/backends/webgpu/kernels/gemm';
import { toNumbers } from '../../src-main/engine/backends/onnx';
import { expect } from 'vitest';
import { rel, rel2 } from './numeric';
import { tempDir } from './services';

/** What the step runner needs of a program (onnxruntime's Program and the GPU backend's GpuProgram). */
export interface StepRunner {
  init(v: Record<string, HostTensor>): Promise<void>;
  step(f: Record<string, HostTensor>): Promise<Record<string, HostTensor>>;
  read(n: string[]): Promise<Record<string, HostTensor>>;
  dispose(): Promise<void>;
}

/** AdamW settings of the step tests. */
export interface StepOptim { lr: number; beta1: number; beta2: number; eps: number; weightDecay: number; maxGradNorm: number }

/**
 * A tiny `arch` model made in a fresh temp folder (`prefix`), opened, with a rank-4 all-linear LoRA layout
 * (alpha 8, seed 3). The caller closes `weights`.
 */
export async function loraStepFixture(arch: string, opts: { prefix?: string } & TinyModelOptions = {}) {
  const { prefix = 'lathe-gpu-', ...tiny } = opts;
  const dir = path.join(tempDir(prefix), arch);
  await createTinyModel(arch, dir, { seed: 1, ...tiny });
  const { config, layout, weights } = await openModel(dir);
  const lora = buildLoraLayout(config, layout, { rank: 4, alpha: 8, dropout: 0, rslora: false, targets: 'all-linear', seed: 3 });
  return { dir, config, layout, weights, lora };
}

/** Start parameters: initLoraParams(seed 3) with a non-zero B too, so every gradient path carries signal. */
export function loraStart(lora: LoraLayout): Float32Array {
  const p0 = initLoraParams(lora, 3);
  for (const m of lora.modules) for (let i = 0; i < m.outFeatures * lora.rank; i++) p0[m.bOffset + i] = 0.02 * Math.sin(i + m.bOffset);
  return p0;
}

/** The optimizer state to start from: `p0`, zero moments and gradient accumulator. */
export function stepState(p0: Float32Array): Record<string, HostTensor> {
  const P = p0.length;
  const z = () => hostTensor('float32', [P], new Float32Array(P));
  return { params: hostTensor('float32', [P], p0), m: z(), v: z(), gacc: z() };
}

/**
 * The feeds of a causal-LM step over B rows of T tokens: ids ((i · idStep) mod 40) + 3, each row's target the
 * next id (the last wraps to the first), mask 1 but 0 at the `masked` positions, invCount 1 / (tokens counted);
 * `(s, apply)`: AdamW step s, apply (else accumulate only). `extra` feeds are added to every step's.
 */
export function stepFeeds(B: number, T: number, optim: StepOptim, opts: { idStep?: number; masked?: number[]; extra?: Record<string, HostTensor> } = {}) {
  const N = B * T, idStep = opts.idStep ?? 7;
  const ids = new BigInt64Array(N), targets = new BigInt64Array(N), mask = new Float32Array(N).fill(1);
  for (let i = 0; i < N; i++) ids[i] = BigInt(((i * idStep) % 40) + 3);
  for (let i = 0; i < N; i++) targets[i] = ids[(i + 1) % N]!;
  for (const i of opts.masked ?? []) mask[i] = 0;
  const counted = N - (opts.masked?.length ?? 0);
  return (s: number, apply: boolean): Record<string, HostTensor> => ({
    ids: hostTensor('int64', [B, T], ids), targets: hostTensor('int64', [N, 1], targets), mask: hostTensor('float32', [N, 1], mask),
    apply: hostTensor('bool', [], new Uint8Array([apply ? 1 : 0])), invCount: hostTensor('float32', [], new Float32Array([1 / counted])),
    adam: hostTensor('float32', [3], Float32Array.from(adamwScalars(optim, s))),
    ...opts.extra,
  });
}

/** What `runSteps` measured: the micro-batch's outputs, loss and accumulated gradient, then each AdamW step's. */
export interface StepRun {
  /** The accumulate-only micro-batch's outputs. */
  out: Record<string, HostTensor>;
  first: number;
  grad: Float32Array;
  losses: number[];
  norms: number[];
  /** The parameters after the steps, minus p0. */
  update: Float32Array;
}

const num = (t: HostTensor): number => Number(t.data[0]);

/**
 * Starts `p` from `init`, runs one accumulate-only micro-batch (feeds(1, false): its loss and the gradient left
 * in gacc), then `steps` AdamW steps (feeds(s, true)); disposes `p`.
 */
export async function runSteps(p: StepRunner, init: Record<string, HostTensor>, feeds: (s: number, apply: boolean) => Record<string, HostTensor>, steps = 3): Promise<StepRun> {
  await p.init(init);
  const out = await p.step(feeds(1, false));
  const grad = (await p.read(['gacc'])).gacc!.data as Float32Array;
  const losses: number[] = [], norms: number[] = [];
  for (let s = 1; s <= steps; s++) {
    const o = await p.step(feeds(s, true));
    losses.push(num(o.loss_sum!));
    norms.push(num(o.grad_norm!));
  }
  const p0 = init.params!.data as Float32Array;
  const params = steps ? (await p.read(['params'])).params!.data as Float32Array : p0;
  await p.dispose();
  return { out, first: num(out.loss_sum!), grad, losses, norms, update: params.map((x, i) => x - p0[i]!) };
}

/**
 * A 16-bit-compute step on the GPU backend: `spec` run (runSteps) in 16-bit storage (array<f16> slots), then in
 * the emulation adapters without shader-f16 get (f32 words holding the rounded values), which must compute the
 * same numbers bit for bit. `inspect` sees the first program before it runs. Returns the first run and its info.
 */
export async function gpuHalfAndEmulation(spec: GpuProgramSpec, opts: GpuProgramOptions, init: Record<string, HostTensor>,
  feeds: (s: number, apply: boolean) => Record<string, HostTensor>, inspect?: (p: GpuProgram) => void): Promise<{ got: StepRun; info: GpuProgramInfo }> {
  const gpu = await GpuProgram.create(spec, opts);
  inspect?.(gpu);
  const info = gpu.info;
  const got = await runSteps(gpu, init, feeds);
  const emu = await runSteps(await GpuProgram.create(spec, { ...opts, shaderF16: false }), init, feeds);
  expect(emu.first).toBe(got.first);
  expect(Array.from(emu.grad)).toEqual(Array.from(got.grad));
  expect(emu.losses).toEqual(got.losses);
  return { got, info };
}

/**
 * Graph `g` (no state) run on the GPU backend in both 16-bit storages (array<f16> slots, then f32 words: `shaderF16`
 * true, false) under each of `configs` (plan options added to `opts`; the first, e.g. the unfused plan, is the
 * reference): every other run's `fetch` outputs must equal the reference's bit for bit (and the reference's be
 * finite). `inspect` sees each program, with its run's label, before it runs.
 */
export async function expectSameOutputsAcrossPlans(g: GpuProgramSpec['graph'], fetch: string[], feeds: Record<string, HostTensor>,
  configs: readonly (readonly [string, GpuProgramOptions])[], opts: GpuProgramOptions, inspect?: (p: GpuProgram, label: string) => void): Promise<void> {
  const results: { label: string; out: Record<string, HostTensor> }[] = [];
  for (const shaderF16 of [true, false]) {
    for (const [name, o] of configs) {
      const label = `${name}, ${shaderF16 ? 'array<f16>' : 'f32 words'}`;
      const p = await GpuProgram.create({ graph: g, state: [], fetch }, { ...opts, shaderF16, ...o });
      try {
        inspect?.(p, label);
        await p.init({});
        results.push({ label, out: await p.step(feeds) });
      } finally {
        await p.dispose();
      }
    }
  }
  const want = results[0]!;
  for (const r of results.slice(1)) {
    for (const n of fetch) {
      const a = Array.from(r.out[n]!.data as Float32Array), b = Array.from(want.out[n]!.data as Float32Array);
      expect(b.every(Number.isFinite)).toBe(true);
      expect(a, `${n}: ${r.label} vs ${want.label}`).toEqual(b);
    }
  }
}

/**
 * Graph `g` (no state, f32) with LoRA side products run on the GPU backend unfused (the reference) and fused:
 * ungrouped, grouped at 8 and 16 bindings, and ungrouped with the 64×64 register-blocked tiles of wide-subgroup GPUs.
 * Every fused plan must hold a side product (its [BM, r] block `Xs` in workgroup memory). Returns each run's `outs`.
 */
export async function runSideProductPlans(g: GpuProgramSpec['graph'], outs: string[], feeds: Record<string, HostTensor>, gpu: GpuContext): Promise<{ ref: Record<string, number[]>; fused: Record<string, number[]>[] }> {
  const wide = { ...gpu, report: { ...gpu.report, gemm: chooseGemm([], [], 32) } };
  const runs: Record<string, number[]>[] = [];
  const variants: GpuProgramOptions[] = [{ noFusion: true, noGrouping: true }, { noGrouping: true }, { maxStorageBuffers: 8 }, { maxStorageBuffers: 16 }, { noGrouping: true, gpu: wide }];
  for (const opts of variants) {
    const prog = await GpuProgram.create({ graph: g, state: [], fetch: outs }, opts);
    try {
      if (!opts.noFusion) expect(prog.plan.dispatches.some((d) => d.wgsl.includes('var<workgroup> Xs'))).toBe(true);
      const o = await prog.step(feeds);
      runs.push(Object.fromEntries(outs.map((k) => [k, toNumbers(o[k]!)])));
    } finally {
      await prog.dispose();
    }
  }
  const [ref, ...fused] = runs as [Record<string, number[]>, ...Record<string, number[]>[]];
  return { ref, fused };
}

/** Two runs computed the same numbers bit for bit: first loss, gradient, losses, grad norms and update. */
export function expectSameRun(got: StepRun, want: StepRun): void {
  expect(got.first).toBe(want.first);
  expect(Array.from(got.grad)).toEqual(Array.from(want.grad));
  expect(got.losses).toEqual(want.losses);
  expect(got.norms).toEqual(want.norms);
  expect(Array.from(got.update)).toEqual(Array.from(want.update));
}

/**
 * `got` against `want`: the first loss (relative), the gradient, losses and norms (max-relative, helpers/numeric
 * rel) and the update (L2, rel2).
 */
export function stepErrors(got: StepRun, want: StepRun): { loss: number; grad: number; losses: number; norms: number; update: number } {
  return {
    loss: Math.abs(got.first - want.first) / Math.abs(want.first), grad: rel(got.grad, want.grad),
    losses: rel(got.losses, want.losses), norms: rel(got.norms, want.norms), update: rel2(got.update, want.update),
  };
}

/** `k 1.2e-6, …` for a test's log line. */
export const formatErrors = (e: Record<string, number>): string => Object.entries(e).map(([k, v]) => `${k} ${v.toExponential(1)}`).join(', ');

/** The trainer settings of the short runs the GPU tests compare (tiny model and dataset, batch 2, 2 accumulated). */
export const shortRun = (model: string, dataset: string, maxSteps: number) =>
  ({ model, dataset, batchSize: 2, gradAccum: 2, evalEvery: 0, checkpointEvery: 10, maxSteps, optim: { lr: 5e-3 }, schedule: { warmupSteps: 1 } });

/** Runs the trainer with `opts` (and `hooks`), keeping the metrics of the optimizer steps (those with a loss). */
export async function trainSteps(opts: Record<string, unknown>, hooks: Parameters<typeof train>[1] = {}) {
  const steps: Record<string, number>[] = [];
  const result = await train(opts, { ...hooks, onMetric: (m) => { hooks.onMetric?.(m); if (typeof m.loss === 'number') steps.push(m); } });
  return { result, steps };
}

/** The largest relative loss and grad-norm differences of `got`'s steps from `want`'s (step by step, over `want`'s). */
export function stepMetricErrors(got: Record<string, number>[], want: Record<string, number>[]): { loss: number; gradNorm: number } {
  let loss = 0, gradNorm = 0;
  want.forEach((c, i) => {
    const g = got[i]!;
    loss = Math.max(loss, Math.abs(g.loss! - c.loss!) / c.loss!);
    gradNorm = Math.max(gradNorm, Math.abs(g.gradNorm! - c.gradNorm!) / c.gradNorm!);
  });
  return { loss, gradNorm };
}

/**
 * The same run on the CPU EP and on the GPU backend (`gpu` added to the GPU run's options, `gpuHooks` its
 * hooks), each in a fresh output folder.
 */
export async function trainCpuAndGpu(base: Record<string, unknown>, gpu: Record<string, unknown> = {}, gpuHooks: Parameters<typeof train>[1] = {}) {
  return {
    cpu: await trainSteps({ ...base, out: path.join(tempDir(), 'cpu'), ep: 'cpu' }),
    gpu: await trainSteps({ ...base, out: path.join(tempDir(), 'gpu'), ep: 'gpu', ...gpu }, gpuHooks),
  };
}
