/**
 * GGUF bench, each row one process (test/bench/gguf-child.ts):
 * 1. the writer alone: MB of output per second and peak RSS for F16, BF16, Q8_0 and Q4_K (F16 and Q8_0 also by
 *    the previous path, each tensor's bytes joined before writing, as the peer), 2 quantization threads,
 *    synthetic 4096×4096 tensors (a 7B model's square matrices), 8 vs 32 of them (0.27 / 1.07 GB of F16 output):
 *    the peak shows whether memory grows with the file;
 * 2. whole exports (read, merge the adapter, convert/quantize, write) of two Llama-style models that differ
 *    only in depth (4 vs 16 layers), with the peer measured in the same run: the merged safetensors export in f16 (src-main/export,
 *    the same read + merge path).
 */
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createTinyModel } from '../../src-main/engine/models';
import { handRun } from '../unit/export/helpers';
import type { GgufChildJob } from './gguf-child';

const CHILD = fileURLToPath(new URL('./gguf-child.ts', import.meta.url));

interface ChildResult { seconds: number; bytes: number; peakRssMb: number; cpuSeconds: number }

function child(job: GgufChildJob): Promise<ChildResult> {
  return new Promise((resolve, reject) => {
    const c = spawn(process.execPath, ['--import', 'tsx', CHILD, JSON.stringify(job)], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '', err = '';
    c.stdout.on('data', (d) => (out += d));
    c.stderr.on('data', (d) => (err += d));
    c.on('close', (code) => {
      const line = out.trim().split('\n').filter((l) => l.startsWith('{')).pop();
      if (code !== 0 || !line) reject(new Error(`gguf child failed (exit ${code}): ${err.slice(-800)}`));
      else resolve(JSON.parse(line) as ChildResult);
    });
  });
}

export async function bench(report: (row: Record<string, unknown>) => void): Promise<void> {
  const wdir = mkdtempSync(join(tmpdir(), 'lathe-gguf-writer-'));
  try {
    for (const tensors of (process.env.LATHE_BENCH_GGUF_TENSORS ?? '8,32').split(',').map(Number)) {
      const rows: Array<['F16' | 'BF16' | 'Q8_0' | 'Q4_K', boolean]> = [['F16', false], ['F16', true], ['BF16', false], ['Q8_0', false], ['Q8_0', true], ['Q4_K', false]];
      for (const [type, joined] of rows) {
        // Q4_K is slow in JS (~2 M values/s per thread): a quarter of the tensors, once.
        if (type === 'Q4_K' && tensors > 8) continue;
        const n = type === 'Q4_K' ? Math.max(1, tensors / 4) : tensors;
        const r = await child({ kind: 'writer', out: join(wdir, 'w.gguf'), type, tensors: n, rows: 4096, cols: 4096, joined });
        report({
          bench: 'gguf', model: `writer only, ${n} × 4096×4096`, what: `GGUF ${type}${joined ? ' (peer: previous path, tensor joined then written)' : ''}`, threads: 2,
          output_mb: (r.bytes / 1e6).toFixed(1), seconds: r.seconds.toFixed(2), mb_per_s: (r.bytes / 1e6 / r.seconds).toFixed(1), cpu_s: r.cpuSeconds.toFixed(2),
          mb_per_cpu_s: (r.bytes / 1e6 / r.cpuSeconds).toFixed(1), peak_rss_mb: r.peakRssMb.toFixed(0),
        });
      }
    }
  } finally {
    rmSync(wdir, { recursive: true, force: true });
  }
  const layersList = (process.env.LATHE_BENCH_GGUF_LAYERS ?? '4,16').split(',').map(Number);
  for (const layers of layersList) {
    const base = mkdtempSync(join(tmpdir(), 'lathe-gguf-bench-'));
    try {
      const model = join(base, 'model');
      const cfg = (await createTinyModel('llama', model, { seed: 1, overrides: { hidden_size: 512, intermediate_size: 1536, num_hidden_layers: layers, num_attention_heads: 8, num_key_value_heads: 4 } })).config;
      const run = join(base, 'run');
      mkdirSync(run);
      await handRun(model, run, { rank: 8 });
      const params = (cfg.numLayers * (512 * 512 * 2 + 2 * 512 * 256 + 3 * 512 * 1536) + 2 * cfg.vocabSize * 512) / 1e6;
      const jobs: Array<[string, GgufChildJob]> = [
        ['export GGUF F16', { kind: 'export', model, run, out: join(base, 'f16'), format: 'gguf', quant: 'f16' }],
        ['export GGUF Q8_0', { kind: 'export', model, run, out: join(base, 'q8'), format: 'gguf', quant: 'q8_0' }],
        ['export GGUF Q4_K_M', { kind: 'export', model, run, out: join(base, 'q4'), format: 'gguf', quant: 'q4_k_m' }],
        ['peer: export merged safetensors f16', { kind: 'export', model, run, out: join(base, 'merged'), format: 'merged' }],
      ];
      for (const [what, job] of jobs) {
        if (what.includes('Q4_K_M') && layers > layersList[0]!) continue; // slow in JS; one size shows it
        const r = await child(job);
        report({
          bench: 'gguf', model: `llama C512 L${layers}`, params_m: params.toFixed(1), what, threads: 2,
          output_mb: (r.bytes / 1e6).toFixed(1), seconds: r.seconds.toFixed(2), mb_per_s: (r.bytes / 1e6 / r.seconds).toFixed(1), cpu_s: r.cpuSeconds.toFixed(2),
          mb_per_cpu_s: (r.bytes / 1e6 / r.cpuSeconds).toFixed(1), peak_rss_mb: r.peakRssMb.toFixed(0),
        });
        rmSync(job.out, { recursive: true, force: true });
      }
    } finally {
      rmSync(base, { recursive: true, force: true });
    }
  }
}
