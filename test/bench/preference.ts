/**
 * DPO's reference model: in the same graph (the base forward run a second time, adapter off) or
 * precomputed once per pair before training and fed as an input. Step time and peak RSS of both step
 * graphs, and the time of the forward-only pass that precomputing costs per batch, each in its own
 * process on the CPU EP. Config: Llama-style V 4096, C 256, L 4, GQA 8/4, F 704; 2 pairs (4 rows) × T 256;
 * LoRA r 8 on all linear layers.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export async function bench(report: (row: Record<string, unknown>) => void): Promise<void> {
  const dir = path.join(mkdtempSync(path.join(os.tmpdir(), 'lathe-bench-pref-')), 'model');
  for (const mode of ['graph', 'input', 'refpass']) {
    const out = execFileSync(process.execPath, ['--import', 'tsx', 'test/bench/preference-child.ts', mode, dir], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
    const row = JSON.parse(out.trim().split('\n').pop()!) as { mode: string; nodes: number; ms: string; peakMB: number };
    const what = { graph: 'DPO step, reference forward in the graph', input: 'DPO step, reference log-probs fed in', refpass: 'reference pass (forward only, per batch)' }[row.mode];
    report({ bench: 'preference', ep: 'cpu', config: 'llama V4096 C256 L4, 2 pairs × 256, r8', what, nodes: row.nodes, ms_min_of_5: row.ms, peak_rss_mb: row.peakMB });
  }
}
