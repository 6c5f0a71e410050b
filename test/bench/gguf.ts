/**
 * GGUF writer bench: throughput (MB of output per second, whole export: read, merge the adapter, convert or
 * quantize in 2 worker threads, write) and peak RSS for F16, Q8_0 and Q4_K_M on two Llama-style models that
 * differ only in depth (8 vs 32 layers, same widest tensor), so the peak shows whether memory grows with the
 * model. Peer in the same run: the merged safetensors export in f16 (src-main/export, same read+merge path).
 * Each row is one export in its own process (test/bench/gguf-child.ts); the model + adapter are made first.
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

function child(job: GgufChildJob): Promise<{ seconds: number; bytes: number; peakRssMb: number }> {
  return new Promise((resolve, reject) => {
    const c = spawn(process.execPath, ['--import', 'tsx', CHILD, JSON.stringify(job)], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '', err = '';
    c.stdout.on('data', (d) => (out += d));
    c.stderr.on('data', (d) => (err += d));
    c.on('close', (code) => {
      const line = out.trim().split('\n').filter((l) => l.startsWith('{')).pop();
      if (code !== 0 || !line) reject(new Error(`gguf child failed (exit ${code}): ${err.slice(-800)}`));
      else resolve(JSON.parse(line) as { seconds: number; bytes: number; peakRssMb: number });
    });
  });
}

export async function bench(report: (row: Record<string, unknown>) => void): Promise<void> {
  const layersList = (process.env.LATHE_BENCH_GGUF_LAYERS ?? '8,32').split(',').map(Number);
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
        ['gguf F16', { model, run, out: join(base, 'f16'), format: 'gguf', quant: 'f16' }],
        ['gguf Q8_0', { model, run, out: join(base, 'q8'), format: 'gguf', quant: 'q8_0' }],
        ['gguf Q4_K_M', { model, run, out: join(base, 'q4'), format: 'gguf', quant: 'q4_k_m' }],
        ['peer: merged safetensors f16', { model, run, out: join(base, 'merged'), format: 'merged' }],
      ];
      for (const [what, job] of jobs) {
        const r = await child(job);
        report({
          bench: 'gguf', model: `llama C512 L${layers}`, params_m: params.toFixed(1), what, threads: 2,
          output_mb: (r.bytes / 1e6).toFixed(1), seconds: r.seconds.toFixed(2), mb_per_s: (r.bytes / 1e6 / r.seconds).toFixed(1), peak_rss_mb: r.peakRssMb.toFixed(0),
        });
        rmSync(job.out, { recursive: true, force: true });
      }
    } finally {
      rmSync(base, { recursive: true, force: true });
    }
  }
}
