/**
 * Activation recomputation: peak memory (process RSS, each run in its own process) and step time of the
 * LoRA training step with and without it, on the CPU EP. Config: Llama-style V 4096, C 256, L 8, GQA 8/4,
 * F 704; B 4 × T 512; LoRA r 8 on all linear layers.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export async function bench(report: (row: Record<string, unknown>) => void): Promise<void> {
  const dir = path.join(mkdtempSync(path.join(os.tmpdir(), 'lathe-bench-rc-')), 'model');
  for (const r of ['0', '1']) {
    const out = execFileSync(process.execPath, ['--import', 'tsx', 'test/bench/recompute-child.ts', r, dir], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
    const row = JSON.parse(out.trim().split('\n').pop()!) as { recompute: boolean; nodes: number; ms: string; peakMB: number; loss: number };
    report({ bench: 'recompute', ep: 'cpu', config: 'llama V4096 C256 L8, 4×512, r8', recompute: row.recompute, nodes: row.nodes, ms_per_step: row.ms, peak_rss_mb: row.peakMB, loss: row.loss });
  }
}
