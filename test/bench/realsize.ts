/**
 * Real-size models (issue 17): random bf16 weights in the shapes of SmolLM2-135M, Qwen2.5-0.5B,
 * Llama-3.2-1B and Llama-3.1-8B (QLoRA), one LoRA step each on the CPU EP in a process of its own
 * (test/bench/realsize-child.ts), and PyTorch 1.13 + OpenBLAS doing the same step on the same folder in
 * the same run (torch_lora_step.py, peak RSS from getrusage). Rows: peak RSS of both, Lathe's graph
 * build and session creation times, the .onnx size, and estimateMemory()'s figure against the measure.
 *
 * Models are generated once into LATHE_BIGMODELS (default /work/bigmodels, else a temp folder) and reused;
 * the weight cache goes to LATHE_CACHE_DIR (default: the user's). Big runs take the lock file
 * LATHE_BIGMEM_LOCK (flock) when set, so only one big-memory process runs on a shared machine.
 * `node --import tsx test/bench/realsize.ts gen <name>` only generates a model.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, renameSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createTinyModel, openModel } from '../../src-main/engine/models';
import { estimateMemory } from '../../src-main/engine/memory/estimate';
import { probeEp } from '../../src-main/engine/backends/onnx/ep';
import type { RealsizeJob } from './realsize-child';
import { writeBigBf16Model } from '../helpers/big';

const HERE = fileURLToPath(new URL('.', import.meta.url));
const CHILD = join(HERE, 'realsize-child.ts');
const TORCH = join(HERE, 'torch_lora_step.py');
const MB = 2 ** 20;

export interface Shape {
  name: string;
  arch: string;
  overrides: Record<string, unknown>;
  batch: number;
  seqLen: number;
  quantize: 'none' | 'nf4';
  /** PyTorch runs the same step (fp32 LoRA); not for QLoRA rows, which PyTorch 1.13 has no kernels for. */
  torch: boolean;
  /** GPU rows: the WebGPU EP (lavapipe here: "GPU" memory is host memory, so RSS counts both), f16 compute or QLoRA. */
  ep?: 'cpu' | 'webgpu';
  compute?: 'float32' | 'float16';
  /** Model folder of another row (GPU rows reuse the CPU rows' models). */
  model?: string;
  /**
   * Weights that repeat one random block (test/helpers/big.ts): written at disk speed instead of drawn value
   * by value (16 GB took > 1 h on the shared machine). For memory and time rows, not for loss values.
   */
  fast?: boolean;
}

const common = { rms_norm_eps: 1e-5, max_position_embeddings: 8192 };
export const SHAPES: Shape[] = [
  { name: 'SmolLM2-135M', arch: 'smollm2', batch: 2, seqLen: 512, quantize: 'none', torch: true,
    overrides: { ...common, hidden_size: 576, num_hidden_layers: 30, num_attention_heads: 9, num_key_value_heads: 3, intermediate_size: 1536, vocab_size: 49152, tie_word_embeddings: true } },
  { name: 'Qwen2.5-0.5B', arch: 'qwen2', batch: 1, seqLen: 512, quantize: 'none', torch: true,
    overrides: { ...common, rms_norm_eps: 1e-6, hidden_size: 896, num_hidden_layers: 24, num_attention_heads: 14, num_key_value_heads: 2, intermediate_size: 4864, vocab_size: 151936, tie_word_embeddings: true } },
  { name: 'Llama-3.2-1B', arch: 'llama3', batch: 1, seqLen: 256, quantize: 'none', torch: true,
    overrides: { ...common, hidden_size: 2048, num_hidden_layers: 16, num_attention_heads: 32, num_key_value_heads: 8, head_dim: 64, intermediate_size: 8192, vocab_size: 128256,
      tie_word_embeddings: true, max_position_embeddings: 131072, rope_scaling: { factor: 32.0, low_freq_factor: 1.0, high_freq_factor: 4.0, original_max_position_embeddings: 8192, rope_type: 'llama3' } } },
  { name: 'Llama-3.1-8B-2layer', arch: 'llama3', batch: 1, seqLen: 64, quantize: 'nf4', torch: false,
    overrides: { ...common, hidden_size: 4096, num_hidden_layers: 2, num_attention_heads: 32, num_key_value_heads: 8, head_dim: 128, intermediate_size: 14336, vocab_size: 128256,
      tie_word_embeddings: false, max_position_embeddings: 131072, rope_scaling: { factor: 8.0, low_freq_factor: 1.0, high_freq_factor: 4.0, original_max_position_embeddings: 8192, rope_type: 'llama3' } } },
];
/** The full 32-layer Llama-3.1-8B shape (16 GB of bf16 on disk; ~5 GB of NF4 codes in the cache): only when named in LATHE_REALSIZE. */
export const BIG_SHAPES: Shape[] = [
  { ...SHAPES[3]!, name: 'Llama-3.1-8B', fast: true, overrides: { ...SHAPES[3]!.overrides, num_hidden_layers: 32 } },
];

/**
 * One tiny step each on the WebGPU EP (lavapipe is ~20x slower than the CPU EP: T = 8, SmolLM2 T = 64); each
 * GPU row also runs the same step on the CPU EP (f32) and reports its loss beside the GPU's.
 */
export const GPU_SHAPES: Shape[] = [
  { ...SHAPES[0]!, name: 'SmolLM2-135M/webgpu-f16', model: 'SmolLM2-135M', ep: 'webgpu', compute: 'float16', batch: 1, seqLen: 64, torch: false },
  { ...SHAPES[2]!, name: 'Llama-3.2-1B/webgpu-f16', model: 'Llama-3.2-1B', ep: 'webgpu', compute: 'float16', batch: 1, seqLen: 8, torch: false },
  { ...SHAPES[3]!, name: 'Llama-3.1-8B-2layer/webgpu-qlora', model: 'Llama-3.1-8B-2layer', ep: 'webgpu', batch: 1, seqLen: 8, torch: false },
];

export function bigModelsDir(): string {
  if (process.env['LATHE_BIGMODELS']) return process.env['LATHE_BIGMODELS'];
  return existsSync('/work/bigmodels') ? '/work/bigmodels' : join(tmpdir(), 'lathe-bigmodels');
}

/** The model folder of `s` (bf16, seed 1), generated on first use (to a temp name, then renamed). */
export async function ensureModel(s: Shape): Promise<string> {
  if (s.model) return ensureModel(SHAPES.find((x) => x.name === s.model)!);
  const dir = join(bigModelsDir(), s.name);
  if (existsSync(join(dir, 'config.json'))) return dir;
  const tmp = `${dir}.partial-${process.pid}`;
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(bigModelsDir(), { recursive: true });
  if (s.fast) await writeBigBf16Model(tmp, s.arch, s.overrides, { maxShardBytes: 4 * 2 ** 30 });
  else await createTinyModel(s.arch, tmp, { seed: 1, dtype: 'bf16', overrides: s.overrides, maxShardBytes: 4 * 2 ** 30 });
  renameSync(tmp, dir);
  return dir;
}

/** Runs `cmd` (under flock when LATHE_BIGMEM_LOCK is set); resolves with the last JSON line of stdout. */
function runJson(cmd: string, args: string[]): Promise<Record<string, number | string>> {
  const lock = process.env['LATHE_BIGMEM_LOCK'];
  const [c, a] = lock ? ['flock', [lock, cmd, ...args]] : [cmd, args];
  return new Promise((resolve, reject) => {
    const env = { ...process.env, XDG_RUNTIME_DIR: process.env['XDG_RUNTIME_DIR'] ?? '/tmp' };
    const p = spawn(c, a, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '', err = '';
    p.stdout.on('data', (d) => (out += d));
    p.stderr.on('data', (d) => (err += d));
    p.on('close', (code) => {
      const line = out.trim().split('\n').filter((l) => l.startsWith('{')).pop();
      if (code !== 0 || !line) reject(new Error(`${cmd} failed (exit ${code}): ${err.slice(-600)}`));
      else resolve(JSON.parse(line) as Record<string, number | string>);
    });
  });
}

export function runLathe(job: RealsizeJob) {
  return runJson(process.execPath, ['--import', 'tsx', CHILD, JSON.stringify(job)]);
}

export function runTorch(dir: string, B: number, T: number, rank: number) {
  return runJson('/usr/bin/python3', [TORCH, dir, String(B), String(T), '1', String(rank), String(2 * rank), '0']);
}

const r1 = (x: number) => Math.round(x * 10) / 10;

export async function bench(report: (row: Record<string, unknown>) => void): Promise<void> {
  const only = process.env['LATHE_REALSIZE']?.split(',');
  const gpu = await probeEp('webgpu');
  if (!gpu.ok) report({ bench: 'realsize', ep: 'webgpu', skipped: gpu.reason });
  for (const s of [...SHAPES, ...(gpu.ok ? GPU_SHAPES : []), ...BIG_SHAPES]) {
    if (only ? !only.includes(s.name) : BIG_SHAPES.includes(s)) continue;
    const rank = 8;
    try {
      const dir = await ensureModel(s);
      const { config, weights } = await openModel(dir);
      await weights.close();
      const ep = s.ep ?? 'cpu';
      const job: RealsizeJob = { modelDir: dir, batch: s.batch, seqLen: s.seqLen, rank, quantize: s.quantize, compute: s.compute, ep, steps: 1 };
      const m = await runLathe(job);
      // GPU rows: the same step on the CPU EP in f32, for the loss
      const cpu = ep === 'webgpu' ? await runLathe({ ...job, ep: 'cpu', compute: undefined }) : null;
      const t = s.torch ? await runTorch(dir, s.batch, s.seqLen, rank) : null;
      const e = estimateMemory(config, { batchSize: s.batch, seqLen: s.seqLen, lora: { rank, targets: 'all-linear' }, quantization: s.quantize }, ep);
      const peak = Number(m['peakRss']);
      report({
        bench: 'realsize', model: s.name, ep, variant: `${s.quantize === 'nf4' ? 'qlora' : 'lora'}${s.compute === 'float16' ? ' f16' : ''}`, tokens: `${s.batch}×${s.seqLen}`,
        lathe_peak_rss_mb: r1(peak / MB), torch_peak_rss_mb: t ? r1(Number(t['peak_rss']) / MB) : 'n/a',
        graph_s: r1(Number(m['graphMs']) / 1000), session_s: r1(Number(m['sessionMs']) / 1000), step_s: r1(Number(m['stepMs']) / 1000),
        torch_step_s: t ? r1(Number(t['ms_per_step']) / 1000) : 'n/a', onnx_mb: r1(Number(m['onnxBytes']) / MB),
        // only the CPU EP's RSS is the device's memory (lavapipe's mixes host and "GPU" memory)
        estimate_mb: r1(e.deviceTotal / MB), est_over_measured: ep === 'cpu' ? Math.round((e.deviceTotal / peak) * 100) / 100 : 'n/a', loss: m['loss'],
        ...(cpu ? { cpu_ep_loss: cpu['loss'], loss_rel_diff: Number((Math.abs(Number(m['loss']) - Number(cpu['loss'])) / Math.abs(Number(cpu['loss']))).toPrecision(2)) } : {}),
      });
    } catch (err) {
      report({ bench: 'realsize', model: s.name, error: (err as Error).message.split('\n').slice(0, 3).join(' ') });
    }
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1] && process.argv[2] === 'gen') {
  const s = [...SHAPES, ...GPU_SHAPES, ...BIG_SHAPES].find((x) => x.name === process.argv[3]);
  if (!s) throw new Error(`No shape ${process.argv[3]}; one of ${SHAPES.map((x) => x.name).join(', ')}.`);
  console.log(await ensureModel(s));
}
