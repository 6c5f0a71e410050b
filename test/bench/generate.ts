/**
 * Generation bench: prefill tokens/s and decode tokens/s per EP for the bundled model
 * resources/models/tiny-default (or LATHE_BENCH_MODEL=DIR), with the KV-cache graphs of engine/generate,
 * plain and with an unmerged rank-8 all-linear LoRA adapter. Prompt of 128 ids prefilled in chunks of 64,
 * then 128 greedy decode steps (EOS ignored). A warm-up generation first (WebGPU shader compiles).
 * WebGPU without a GPU device is Mesa lavapipe (software Vulkan): its numbers measure lavapipe.
 * Baseline: test/bench/torch_generate.py (PyTorch, reference.py's layers with a growing KV cache, greedy),
 * on LATHE_BENCH_TORCH_DEVICE (cpu unless set, e.g. cuda on a GPU machine), when /usr/bin/python3 has torch.
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Generator, type GenerateResult } from '../../src-main/engine/generate';
import { openModel } from '../../src-main/engine/models';
import { buildLoraLayout, DEFAULT_LORA } from '../../src-main/engine/llm/lora';
import { Rng } from '../../src-main/engine/models/rng';
import { probeEp } from '../../src-main/engine/backends/onnx/ep';
import type { EpName } from '../../src-main/engine/backends/onnx/session';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const round = (x: number) => Math.round(x * 10) / 10;

export async function bench(report: (row: Record<string, unknown>) => void, opts: { eps?: EpName[]; promptTokens?: number; newTokens?: number } = {}): Promise<void> {
  const dir = process.env['LATHE_BENCH_MODEL'] ?? path.join(root, 'resources/models/tiny-default');
  const P = opts.promptTokens ?? 128, N = opts.newTokens ?? 128;
  const { config, layout, weights } = await openModel(dir);
  const lora = buildLoraLayout(config, layout, { ...DEFAULT_LORA, rank: 8, alpha: 16, targets: 'all-linear' });
  await weights.close();
  const rng = new Rng(1);
  const prompt = Array.from({ length: P }, () => Math.floor(rng.next() * config.vocabSize));
  const params = new Rng(2).normalArray(lora.size, 0.02);
  const device = process.env['LATHE_BENCH_TORCH_DEVICE'] ?? 'cpu';
  try {
    const out = execFileSync('/usr/bin/python3', [path.join(root, 'test/bench/torch_generate.py'), dir, String(P), String(N), device], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    const t = JSON.parse(out.trim().split('\n').pop()!) as { prefill_tok_s: number; decode_tok_s: number; torch: string };
    report({ bench: 'generate', model: path.basename(dir), ep: `pytorch ${t.torch} (${device}, KV cache)`, adapter: 'none', prompt_tokens: P, new_tokens: N,
      prefill_tok_s: round(t.prefill_tok_s), decode_tok_s: round(t.decode_tok_s) });
  } catch (e) {
    report({ bench: 'generate', ep: `pytorch (${device})`, skipped: `baseline unavailable: ${(e as Error).message.split('\n')[0]}` });
  }
  for (const ep of opts.eps ?? (['cpu', 'webgpu', 'cuda'] as EpName[])) {
    const a = await probeEp(ep);
    if (!a.ok) { report({ bench: 'generate', ep, skipped: a.reason }); continue; }
    const label = ep === 'webgpu' && !existsSync('/dev/dri') ? 'webgpu-lavapipe' : ep;
    for (const withLora of [false, true]) {
      const t0 = performance.now();
      const gen = await Generator.open(dir, { ep, capacity: P + N + 1, chunk: 64, lora: withLora ? { layout: lora, params } : null });
      const buildMs = performance.now() - t0;
      try {
        const t1 = performance.now();
        await gen.generate(prompt, { greedy: true, maxTokens: N, ignoreEos: true }); // warm-up (shaders, JIT)
        const warmMs = performance.now() - t1;
        const runs: GenerateResult['timings'][] = [];
        for (let i = 0; i < 3; i++) runs.push((await gen.generate(prompt, { greedy: true, maxTokens: N, ignoreEos: true })).timings);
        const best = (k: 'prefillTokensPerSecond' | 'decodeTokensPerSecond') => Math.max(...runs.map((r) => r[k]));
        report({
          bench: 'generate', model: path.basename(dir), ep: label, adapter: withLora ? `LoRA r=8 all-linear (${lora.size} params, unmerged)` : 'none',
          prompt_tokens: P, new_tokens: N, prefill_tok_s: round(best('prefillTokensPerSecond')), decode_tok_s: round(best('decodeTokensPerSecond')),
          build_ms: round(buildMs), warmup_ms: round(warmMs),
        });
      } finally {
        await gen.dispose();
      }
    }
  }
}
