/**
 * Real-GPU check of Lathe's own WebGPU backend (issue #18): random bf16 weights in a real model's shapes,
 * the fused LoRA train step (the graph the trainer builds for this backend) run on GpuProgram for a few
 * warm steps, one JSON object per result. The CLI (main.ts) prints them as JSON lines; the device runner
 * (run.sh) collects them with the PyTorch peer's (torch_peer.py) on the same model folders.
 * Consumes the backend's public API only (engine/backends/webgpu/index.ts).
 */
import { copyFileSync, existsSync, mkdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { REAL_SHAPES } from '../../test/bench/webgpu';
import { createTinyModel, openModel, parseModelConfig, weightsLayout } from '../../src-main/engine/models';
import { Rng } from '../../src-main/engine/models/rng';
import { f32ToBf16Bits, writeModelWeights } from '../../src-main/engine/safetensors';
import { buildLoraLayout, initLoraParams } from '../../src-main/engine/llm/lora';
import { buildTrainGraph } from '../../src-main/engine/llm/train-graph';
import { adamwScalars } from '../../src-main/engine/nn/layers';
import { hostTensor } from '../../src-main/engine/runtime/tensor';
import { openWeightSource } from '../../src-main/engine/weights/source';
import { GpuProgram, describeGpu, openGpu } from '../../src-main/engine/backends/webgpu';

export type Row = Record<string, unknown>;

/** Models the check knows: the real shapes of test/bench/webgpu.ts, plus `tiny` (CI and dry runs). */
export const MODELS: Record<string, { hf: Record<string, unknown>; qlora: boolean }> = {
  'SmolLM2-135M': { hf: REAL_SHAPES['SmolLM2-135M']!, qlora: false },
  'Llama-3.2-1B': { hf: REAL_SHAPES['Llama-3.2-1B']!, qlora: false },
  'Llama-3.1-8B': { hf: REAL_SHAPES['Llama-3.1-8B']!, qlora: true },
  tiny: {
    hf: {
      architectures: ['LlamaForCausalLM'], model_type: 'llama', hidden_size: 64, intermediate_size: 128, num_hidden_layers: 2,
      num_attention_heads: 4, num_key_value_heads: 2, vocab_size: 512, max_position_embeddings: 4096, rms_norm_eps: 1e-5,
      rope_theta: 10000, tie_word_embeddings: false, hidden_act: 'silu', torch_dtype: 'bfloat16',
    },
    qlora: false,
  },
};
/** The tiny model as QLoRA (NF4 base layers): the dry run of the 8B row's path. */
MODELS['tiny-qlora'] = { hf: MODELS['tiny']!.hf, qlora: true };

/** LoRA and optimizer of every row (the PyTorch peer uses the same: torch_peer.py). */
export const LORA = { rank: 16, alpha: 32, dropout: 0, rslora: false, targets: 'all-linear' as const, seed: 1 };
export const OPTIM = { lr: 1e-4, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0, maxGradNorm: 1 };

const BLOCK = 4099; // prime: rows of a matrix do not repeat in step

/** The HF config of `model`, with its layer count cut to `layers` when given (0: all). */
export function hfConfig(model: string, layers = 0): Record<string, unknown> {
  const m = MODELS[model];
  if (!m) throw new Error(`Unknown model "${model}" (known: ${Object.keys(MODELS).join(', ')}).`);
  return layers > 0 ? { ...m.hf, num_hidden_layers: layers } : { ...m.hf };
}

/**
 * Writes a model folder of random bf16 weights in `hf`'s shapes (config.json + safetensors, sharded at 5 GB,
 * one tensor in memory at a time; norms 1). Weights repeat one random block (fast at 8B; values, not
 * parity, do not matter here). Skips the work when the folder is already complete; written under a
 * temporary name and renamed, so a killed run leaves no half folder.
 */
export async function writeRandomModel(dir: string, hf: Record<string, unknown>, seed = 5): Promise<{ dir: string; params: number; bytes: number; reused: boolean }> {
  const layout = weightsLayout(parseModelConfig(hf));
  const params = [...layout.shapes.values()].reduce((a, s) => a + s.reduce((p, q) => p * q, 1), 0);
  if (existsSync(path.join(dir, 'config.json'))) return { dir, params, bytes: params * 2, reused: true };
  const tmp = `${dir}.partial`;
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp, { recursive: true });
  // the tokenizer files of the tiny llama (openModel wants a tokenizer; the check feeds token ids directly)
  const tiny = `${dir}.tiny`;
  rmSync(tiny, { recursive: true, force: true });
  await createTinyModel('llama', tiny, { seed: 1 });
  for (const f of ['generation_config.json', 'tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json']) {
    if (existsSync(path.join(tiny, f))) copyFileSync(path.join(tiny, f), path.join(tmp, f));
  }
  rmSync(tiny, { recursive: true, force: true });
  writeFileSync(path.join(tmp, 'config.json'), JSON.stringify(hf, null, 2));
  const rng = new Rng(seed);
  const block = Uint16Array.from({ length: BLOCK }, () => f32ToBf16Bits((rng.next() * 2 - 1) * 0.05));
  const specs = [...layout.shapes].map(([name, shape]) => ({ name, dtype: 'BF16' as const, shape }));
  const { totalBytes } = await writeModelWeights(tmp, specs, (s) => {
    const n = s.shape.reduce((a, b) => a * b, 1);
    const out = new Uint16Array(n);
    if (/norm[^.]*\.weight$/.test(s.name)) out.fill(f32ToBf16Bits(1));
    else if (!s.name.endsWith('.bias')) {
      out.set(block.subarray(0, Math.min(BLOCK, n)));
      for (let filled = Math.min(BLOCK, n); filled < n; filled *= 2) out.copyWithin(filled, 0, Math.min(filled, n - filled));
    }
    return out;
  });
  renameSync(tmp, dir);
  return { dir, params, bytes: totalBytes, reused: false };
}

/** What the adapter reports: name, GEMM path, features, subgroup sizes, subgroup-matrix configs, limits. */
export async function adapterRow(): Promise<Row> {
  const gpu = await openGpu();
  const r = gpu.report;
  let subgroups: { min: number | null; max: number | null } = { min: null, max: null };
  try { // (the report keeps no subgroup sizes: ask the same Dawn instance's adapter)
    const info = (await gpu.instance.requestAdapter({ powerPreference: 'high-performance' }))?.info as (GPUAdapterInfo & { subgroupMinSize?: number; subgroupMaxSize?: number }) | undefined;
    subgroups = { min: info?.subgroupMinSize ?? null, max: info?.subgroupMaxSize ?? null };
  } catch { /* reported as null */ }
  return {
    kind: 'adapter', adapter: r.adapter, software: r.software, gemm: r.gemm, describe: describeGpu(r), features: [...r.features].sort(),
    subgroupSizes: subgroups, subgroupMatrixConfigs: r.subgroupMatrixConfigs, limits: r.limits, notes: r.notes,
  };
}

/** Peak of nvidia-smi's memory.used (MiB) while fn runs, minus the value before; null without nvidia-smi. */
async function gpuPeak<T>(fn: () => Promise<T>): Promise<[T, number | null]> {
  let base: number | null = null, peak = 0;
  let p: ReturnType<typeof spawn> | null = null;
  try {
    p = spawn('nvidia-smi', ['--query-gpu=memory.used', '--format=csv,noheader,nounits', '-lms', '100'], { stdio: ['ignore', 'pipe', 'ignore'] });
    p.on('error', () => { p = null; });
    p.stdout?.on('data', (d: Buffer) => {
      for (const s of d.toString().split('\n')) { const v = Number(s); if (s.trim() && Number.isFinite(v)) { base ??= v; peak = Math.max(peak, v); } }
    });
    await new Promise((r) => setTimeout(r, 300));
  } catch { p = null; }
  try { return [await fn(), base === null ? null : peak - base]; } finally { p?.kill(); }
}

export interface StepCheck {
  /** Model folder (made by writeRandomModel). */
  dir: string;
  model: string;
  batch: number;
  seqLen: number;
  recompute: boolean;
  /** Timed steps after two untimed ones (the first compiles the pipelines). */
  steps: number;
  /** QLoRA: NF4 base layers (weight cache under cacheRoot). */
  qlora: boolean;
  cacheRoot?: string;
}

const ms = (a: number, b: number) => +(b - a).toFixed(1);

/** Builds the fused train step for the folder and runs it on the GPU backend: one row of figures. */
export async function checkStep(c: StepCheck): Promise<Row> {
  const t0 = performance.now();
  const { config, layout, weights } = await openModel(c.dir);
  try {
    const lora = buildLoraLayout(config, layout, LORA);
    const src = { ...openWeightSource(weights, { ...(c.qlora ? { quantize: 'nf4' as const } : {}), ...(c.cacheRoot ? { cacheRoot: c.cacheRoot } : {}) }), bf16InPlace: true };
    const B = c.batch, T = c.seqLen, N = B * T, P = lora.size;
    const tg = await buildTrainGraph(config, layout, src, lora, { batch: B, seqLen: T, fused: true, recompute: c.recompute }, OPTIM);
    const tBuild = performance.now();
    const [r, peakMiB] = await gpuPeak(async () => {
      const prog = await GpuProgram.create({ graph: tg.graph, state: tg.state, fetch: tg.fetch }, { externalDataDir: src.dir });
      try {
        const tCreate = performance.now();
        const z = () => hostTensor('float32', [P], new Float32Array(P));
        await prog.init({ params: hostTensor('float32', [P], initLoraParams(lora, 1)), m: z(), v: z(), gacc: z() });
        const ids = BigInt64Array.from({ length: N }, (_, i) => BigInt(((i * 2654435761) >>> 0) % config.vocabSize));
        const targets = BigInt64Array.from({ length: N }, (_, i) => ids[(i + 1) % N]!);
        const feeds = (s: number): Record<string, ReturnType<typeof hostTensor>> => {
          const f: Record<string, ReturnType<typeof hostTensor>> = {
            ids: hostTensor('int64', [B, T], ids), targets: hostTensor('int64', [N, 1], targets),
            mask: hostTensor('float32', [N, 1], new Float32Array(N).fill(1)), apply: hostTensor('bool', [], new Uint8Array([1])),
            invCount: hostTensor('float32', [], new Float32Array([1 / N])), adam: hostTensor('float32', [3], Float32Array.from(adamwScalars(OPTIM, s))),
          };
          if (prog.info.feeds.includes('recompute_one')) f['recompute_one'] = hostTensor('float32', [], new Float32Array([1]));
          return f;
        };
        const loss = (x: Record<string, { data: unknown }>) => Number((x['loss_sum']!.data as ArrayLike<number>)[0]) / N;
        const f0 = performance.now();
        const first = await prog.step(feeds(1));
        const firstMs = performance.now() - f0;
        await prog.step(feeds(2));
        const times: number[] = [];
        let last = first;
        for (let s = 0; s < c.steps; s++) { const a = performance.now(); last = await prog.step(feeds(3 + s)); times.push(performance.now() - a); }
        times.sort((a, b) => a - b);
        return { createMs: ms(tBuild, tCreate), firstMs: +firstMs.toFixed(1), times, loss0: loss(first), lossN: loss(last), info: prog.info };
      } finally {
        await prog.dispose();
      }
    });
    const med = r.times[r.times.length >> 1]!;
    const total = Object.values(r.info.bytes).reduce((a, b) => a + b, 0);
    return {
      kind: 'lathe', model: c.model, layers: config.numLayers, qlora: c.qlora, batch: B, seqLen: T, recompute: c.recompute, graph: 'fused',
      loraRank: LORA.rank, loraParams: P, nodes: r.info.nodes, dispatches: r.info.dispatches, pipelines: r.info.pipelines,
      byKernel: r.info.byKernel, planBytes: r.info.bytes, planBytesTotal: total,
      buildMs: ms(t0, tBuild), createMs: r.createMs, firstStepMs: r.firstMs,
      stepMs: { median: +med.toFixed(1), min: +r.times[0]!.toFixed(1), max: +r.times[r.times.length - 1]!.toFixed(1), n: r.times.length },
      tokensPerS: Math.round(N / (med / 1000)), lossFirst: r.loss0, lossLast: r.lossN, lossFinite: Number.isFinite(r.loss0) && Number.isFinite(r.lossN),
      gpuPeakMiB: peakMiB, rssMiB: Math.round(process.resourceUsage().maxRSS / 1024),
    };
  } finally {
    await weights.close();
  }
}

/** The check as one error row (the runner goes on with the next). */
export function errorRow(what: Row, e: unknown): Row {
  const m = e instanceof Error ? e.message : String(e);
  return { ...what, error: m.split('\n').slice(0, 3).join(' | ').slice(0, 600) };
}
