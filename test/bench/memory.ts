/**
 * Memory bench: LoRA vs QLoRA (NF4) and paged optimizer states, per EP, on tiny-architecture models
 * scaled up by config overrides. Each row is one run in its own process (test/bench/memory-child.ts),
 * so its peak RSS is that run's alone; the row also holds estimateMemory()'s total for the same
 * configuration and the ratio of the two (target: within 15% on the CPU EP, where the process's
 * memory is the device's memory).
 *
 * WebGPU rows run on whatever adapter is found; on a machine without a GPU that is Mesa lavapipe,
 * whose "GPU" buffers are host memory, so its RSS counts device and host together and its times
 * measure lavapipe, not a GPU. No GPU was available when these were recorded, so the published GPU
 * figures (docs/qlora-memory.md, ../shared/notes/landscape.md) could not be compared.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildTinyTokenizer, createTinyModel, parseModelConfig, tinyHfConfig, type TinyArch } from '../../src-main/engine/models';
import { estimateMemory, type MemoryEp } from '../../src-main/engine/memory/estimate';
import { probeEp } from '../../src-main/engine/backends/onnx/ep';
import type { ChildJob } from './memory-child';

const CHILD = fileURLToPath(new URL('./memory-child.ts', import.meta.url));

export interface MeasuredRun { peakRss: number; stepMs: number; tokensPerSecond: number; loss: number; nodes: number; loraParams: number }

/** Runs one job in a fresh process (the model made here first) and returns its measurements. */
export async function runChild(job: ChildJob): Promise<MeasuredRun> {
  const base = mkdtempSync(join(tmpdir(), 'lathe-mem-'));
  try {
    const modelDir = join(base, 'model');
    await createTinyModel(job.arch, modelDir, { seed: 1, overrides: job.overrides });
    return await spawnChild({ ...job, modelDir });
  } finally {
    rmSync(base, { recursive: true, force: true });
  }
}

function spawnChild(job: ChildJob): Promise<MeasuredRun> {
  return new Promise((resolve, reject) => {
    const env = { ...process.env, XDG_RUNTIME_DIR: process.env.XDG_RUNTIME_DIR ?? '/tmp' };
    const c = spawn(process.execPath, ['--import', 'tsx', CHILD, JSON.stringify(job)], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '', err = '';
    c.stdout.on('data', (d) => (out += d));
    c.stderr.on('data', (d) => (err += d));
    c.on('close', (code) => {
      const line = out.trim().split('\n').filter((l) => l.startsWith('{')).pop();
      if (code !== 0 || !line) reject(new Error(`memory child failed (exit ${code}): ${err.slice(-800)}`));
      else resolve(JSON.parse(line) as MeasuredRun);
    });
  });
}

/** The ModelConfig a child job's model will have (same HF config createTinyModel writes). */
export function jobModelConfig(job: Pick<ChildJob, 'arch' | 'overrides'>) {
  const tok = buildTinyTokenizer();
  return parseModelConfig({ ...tinyHfConfig(job.arch as TinyArch, tok.vocabSize, { bos: tok.ids.endoftext, eos: tok.ids.imEnd, pad: tok.ids.endoftext }), ...job.overrides });
}

export function estimateFor(job: ChildJob) {
  return estimateMemory(jobModelConfig(job), {
    batchSize: job.batch, seqLen: job.seqLen, lora: { rank: job.rank, targets: 'all-linear' }, quantization: job.quantize, pagedOptimizer: !!job.paged,
  }, job.ep as MemoryEp);
}

const MB = 2 ** 20;
const r1 = (x: number) => Math.round(x * 10) / 10;

/** Model sizes for the rows: small enough for a 2-core CI box, large enough that weights matter. */
export const SIZES: { name: string; arch: string; overrides: Record<string, unknown>; batch: number; seqLen: number }[] = [
  { name: 'llama-25M', arch: 'llama', overrides: { hidden_size: 512, intermediate_size: 1536, num_hidden_layers: 6, num_attention_heads: 8, num_key_value_heads: 4, vocab_size: 4096 }, batch: 2, seqLen: 64 },
  { name: 'qwen3-14M', arch: 'qwen3', overrides: { hidden_size: 384, intermediate_size: 1024, num_hidden_layers: 6, vocab_size: 4096 }, batch: 2, seqLen: 128 },
  { name: 'gpt2-20M', arch: 'gpt2', overrides: { n_embd: 512, n_layer: 6, n_head: 8, vocab_size: 4096 }, batch: 4, seqLen: 64 },
];

export async function bench(report: (row: Record<string, unknown>) => void): Promise<void> {
  const eps: MemoryEp[] = ['cpu'];
  const gpu = await probeEp('webgpu');
  if (gpu.ok) eps.push('webgpu');
  else report({ bench: 'memory', ep: 'webgpu', skipped: gpu.reason });
  for (const ep of eps) {
    // lavapipe is ~20x slower than the CPU EP: one small model there
    const sizes = ep === 'cpu' ? SIZES : [{ ...SIZES[0]!, name: 'llama-tiny', overrides: {}, batch: 1, seqLen: 32 }];
    for (const s of sizes) {
      for (const variant of ['lora', 'qlora', 'qlora+paged'] as const) {
        const job: ChildJob = {
          arch: s.arch, overrides: s.overrides, batch: s.batch, seqLen: s.seqLen, rank: 8, ep, steps: ep === 'cpu' ? 6 : 3,
          quantize: variant === 'lora' ? 'none' : 'nf4', paged: variant === 'qlora+paged',
        };
        try {
          const m = await runChild(job);
          const e = estimateFor(job);
          report({
            bench: 'memory', ep, model: s.name, variant, tokens: `${s.batch}×${s.seqLen}`,
            params_m: r1((e.params.linear + e.params.other) / 1e6), lora_params: m.loraParams,
            step_ms: Math.round(m.stepMs), tokens_per_s: Math.round(m.tokensPerSecond),
            peak_rss_mb: r1(m.peakRss / MB), estimate_mb: r1(e.deviceTotal / MB),
            est_weights_mb: r1(e.device.weights / MB), est_activations_mb: r1(e.device.activations / MB),
            // only the CPU EP's RSS is the device's memory; lavapipe's RSS mixes host and "GPU" memory
            est_over_measured: ep === 'cpu' ? Math.round((e.deviceTotal / m.peakRss) * 100) / 100 : 'n/a',
          });
        } catch (err) {
          report({ bench: 'memory', ep, model: s.name, variant, error: (err as Error).message.split('\n')[0] });
        }
      }
    }
  }
}
