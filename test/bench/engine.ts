/**
 * Engine bench: step time, node count and peak RSS per execution provider for fixed synthetic
 * workloads. Rows go to `report`; bin/bench.mjs prints them.
 *   matmul-chain: x [B=32, K=128] through 16 × (MatMul [K, K] + Tanh), then ReduceMean (33 nodes,
 *                 ~17 MFLOP): dominated by per-node dispatch cost, which is what hurts on GPUs.
 *   mlp-train:    src-main/engine/nn's MLP training step (forward + cross-entropy + backward + AdamW in
 *                 one graph), B=64, D=64, H=256, K=16; params and Adam moments are Program state
 *                 (GPU-resident on WebGPU).
 *   lora-train:   src-main/engine/llm's LoRA training step on the tiny llama test model (B=2, T=32,
 *                 rank 8 on all linear layers), params/moments/accumulator GPU-resident on WebGPU.
 * WebGPU rows are only produced when an adapter is found; on machines without a GPU that is Mesa
 * lavapipe (software Vulkan), so its times measure lavapipe, not a GPU.
 */
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildLoraLayout, initLoraParams } from '../../src-main/engine/llm/lora';
import { buildTrainGraph } from '../../src-main/engine/llm/train-graph';
import { createTinyModel, openModel } from '../../src-main/engine/models';
import { adamwScalars, buildMlpTrainStep, initMlpParams, mlpSyntheticBatch, type MlpConfig } from '../../src-main/engine/nn';
import { rawTensor } from '../../src-main/engine/onnx/pack';
import type { OnnxModel } from '../../src-main/engine/onnx/spec';
import { probeEp } from '../../src-main/engine/backends/onnx/ep';
import { Program, type ProgramSpec } from '../../src-main/engine/backends/onnx/program';
import type { EpName } from '../../src-main/engine/backends/onnx/session';
import { hostTensor, type HostTensor } from '../../src-main/engine/runtime/tensor';

export interface Workload {
  name: string;
  spec: ProgramSpec;
  init: Record<string, HostTensor>;
  feeds: Record<string, HostTensor>;
  /** Folder external-data weights are relative to. */
  externalDataDir?: string;
  close?: () => Promise<void>;
}

function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32) * 2 - 1;
}

export function matmulChain(B = 32, K = 128, depth = 16): Workload {
  const r = lcg(7);
  const nodes: OnnxModel['graph']['nodes'] = [];
  const initializers = [];
  let h = 'x';
  for (let i = 0; i < depth; i++) {
    initializers.push(rawTensor(`W${i}`, 'float32', [K, K], Array.from({ length: K * K }, () => r() / Math.sqrt(K))));
    nodes.push({ op: 'MatMul', inputs: [h, `W${i}`], outputs: [`m${i}`] }, { op: 'Tanh', inputs: [`m${i}`], outputs: [`h${i}`] });
    h = `h${i}`;
  }
  nodes.push({ op: 'ReduceMean', inputs: [h], outputs: ['loss'], attributes: { keepdims: { type: 'int', value: 0 } } });
  const model: OnnxModel = {
    opsets: [{ domain: '', version: 21 }],
    graph: { name: 'matmul_chain', nodes, initializers, inputs: [{ name: 'x', type: 'float32', shape: [B, K] }], outputs: [{ name: 'loss', type: 'float32', shape: [] }] },
  };
  return {
    name: `matmul-chain (B=${B}, K=${K}, depth=${depth})`,
    spec: { model, state: [], fetch: ['loss'] },
    init: {},
    feeds: { x: hostTensor('float32', [B, K], Array.from({ length: B * K }, r)) },
  };
}

export function mlpTrain(): Workload {
  const cfg: MlpConfig = { batch: 64, inDim: 64, hidden: 256, classes: 16, targetType: 'int32', adamw: { lr: 1e-3 } };
  const step = buildMlpTrainStep(cfg);
  const P = step.paramCount;
  const b = mlpSyntheticBatch(cfg, 1);
  return {
    name: `mlp-train (B=64, D=64, H=256, K=16, ${P} params, AdamW)`,
    spec: { model: step.model, state: step.state, fetch: step.fetch },
    init: {
      params: hostTensor('float32', [P], initMlpParams(step.layout, 1)),
      m: hostTensor('float32', [P], new Float32Array(P)),
      v: hostTensor('float32', [P], new Float32Array(P)),
    },
    feeds: {
      opt: hostTensor('float32', [3], adamwScalars(cfg.adamw!, 1)),
      x: hostTensor('float32', [cfg.batch, cfg.inDim], b.x),
      targets: hostTensor('int32', [cfg.batch], b.targets),
    },
  };
}

export async function loraTrain(): Promise<Workload> {
  const dir = join(mkdtempSync(join(tmpdir(), 'lathe-bench-')), 'llama');
  await createTinyModel('llama', dir, { seed: 1 });
  const { config, layout, weights } = await openModel(dir);
  const optim = { lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0, maxGradNorm: 1 };
  const lora = buildLoraLayout(config, layout, { rank: 8, alpha: 16, dropout: 0, rslora: false, targets: 'all-linear', seed: 3 });
  const B = 2, T = 32, N = B * T, P = lora.size;
  const tg = await buildTrainGraph(config, layout, { weights, dir }, lora, { batch: B, seqLen: T }, optim);
  const ids = new BigInt64Array(N), targets = new BigInt64Array(N);
  for (let i = 0; i < N; i++) ids[i] = BigInt(((i * 7) % 40) + 3);
  for (let i = 0; i < N; i++) targets[i] = ids[(i + 1) % N]!;
  const z = () => hostTensor('float32', [P], new Float32Array(P));
  return {
    name: `lora-train (tiny llama, B=${B}, T=${T}, rank 8, ${P} LoRA values)`,
    spec: { model: tg.model, state: tg.state, fetch: tg.fetch },
    init: { params: hostTensor('float32', [P], initLoraParams(lora, 3)), m: z(), v: z(), gacc: z() },
    feeds: {
      ids: hostTensor('int64', [B, T], ids), targets: hostTensor('int64', [N, 1], targets),
      mask: hostTensor('float32', [N, 1], new Float32Array(N).fill(1)), apply: hostTensor('bool', [], new Uint8Array([1])),
      invCount: hostTensor('float32', [], [1 / N]), adam: hostTensor('float32', [3], adamwScalars(optim, 1)),
    },
    externalDataDir: dir,
    close: () => weights.close(),
  };
}

export interface BenchOptions {
  eps?: EpName[];
  /** Timed steps per EP (after warm-up). */
  steps?: Partial<Record<EpName, number>>;
}

export async function bench(report: (row: Record<string, unknown>) => void, opts: BenchOptions = {}): Promise<void> {
  const workloads = [matmulChain(), mlpTrain(), await loraTrain()];
  const eps: EpName[] = [];
  for (const ep of opts.eps ?? (['cpu', 'webgpu', 'cuda'] as EpName[])) {
    const a = await probeEp(ep);
    if (a.ok) eps.push(ep);
    else report({ bench: 'engine', ep, skipped: a.reason });
  }
  for (const w of workloads) {
    for (const ep of eps) {
      const steps = opts.steps?.[ep] ?? (ep === 'webgpu' && !existsSync('/dev/dri') ? 10 : 30);
      const rssBefore = process.memoryUsage().rss;
      const p = await Program.create(w.spec, { ep, disableCpuFallback: ep !== 'cpu', externalDataDir: w.externalDataDir });
      try {
        await p.init(w.init);
        let t = performance.now();
        await p.step(w.feeds); // first step: kernel/shader compilation
        const firstMs = performance.now() - t;
        for (let i = 0; i < 2; i++) await p.step(w.feeds);
        const times: number[] = [];
        for (let i = 0; i < steps; i++) {
          t = performance.now();
          await p.step(w.feeds);
          times.push(performance.now() - t);
        }
        times.sort((a, b) => a - b);
        report({
          bench: 'engine',
          workload: w.name,
          ep: ep === 'webgpu' && !existsSync('/dev/dri') ? 'webgpu-lavapipe' : ep,
          nodes: p.info.nodeCount,
          gpu_resident_state: p.info.gpuResident,
          steps,
          step_ms_median: round(times[Math.floor(times.length / 2)]!),
          step_ms_min: round(times[0]!),
          first_step_ms: round(firstMs),
          rss_growth_mb: round((process.memoryUsage().rss - rssBefore) / 2 ** 20),
          // maxRSS is for the whole process so far (all EPs run before this row included).
          peak_rss_mb: round(process.resourceUsage().maxRSS / 1024),
        });
      } finally {
        await p.dispose();
      }
    }
    await w.close?.();
  }
}

function round(x: number): number {
  return Math.round(x * 100) / 100;
}
