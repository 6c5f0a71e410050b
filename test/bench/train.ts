/**
 * Training throughput: the LoRA training step (forward + backward + AdamW, one graph) per EP on fixed
 * configs, against the same step in PyTorch (CPU, /usr/bin/python3 with Debian's torch) in the same run.
 *
 * Configs:
 *  - reference: the engine spike's config (Llama-style, V 8192, C 256, L 4, H 8 / K 4, D 32, F 704,
 *    B 4 × T 256 = 1,024 tokens/step, LoRA r 8, alpha 16 on all 7 linear layers).
 *  - tiny-default: the bundled demo model, B 8 × T 64.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createTinyModel, openModel } from '../../src-main/engine/models';
import { buildLoraLayout, initLoraParams } from '../../src-main/engine/llm/lora';
import { buildTrainGraph } from '../../src-main/engine/llm/train-graph';
import { Program, hostTensor, type EpName } from '../../src-main/engine/backends/onnx';
import { adamwScalars } from '../../src-main/engine/nn/layers';

interface Cfg { name: string; dir: () => Promise<string>; B: number; T: number; rank: number; alpha: number; eps: EpName[] }

const REFERENCE = {
  vocab_size: 8192, hidden_size: 256, num_hidden_layers: 4, num_attention_heads: 8, num_key_value_heads: 4,
  intermediate_size: 704, max_position_embeddings: 512, tie_word_embeddings: false,
};

async function measure(dir: string, ep: EpName, B: number, T: number, rank: number, alpha: number, steps: number, recompute = false) {
  const { config, layout, weights } = await openModel(dir);
  const lora = buildLoraLayout(config, layout, { rank, alpha, dropout: 0, rslora: false, targets: 'all-linear', seed: 1 });
  const optim = { lr: 1e-4, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0, maxGradNorm: 1 };
  const tg = await buildTrainGraph(config, layout, { weights, dir }, lora, { batch: B, seqLen: T, recompute }, optim);
  const prog = await Program.create({ model: tg.model, state: tg.state, fetch: tg.fetch }, { ep, externalDataDir: dir });
  const P = lora.size, N = B * T;
  const z = () => hostTensor('float32', [P], new Float32Array(P));
  await prog.init({ params: hostTensor('float32', [P], initLoraParams(lora, 1)), m: z(), v: z(), gacc: z() });
  const ids = BigInt64Array.from({ length: N }, (_, i) => BigInt((i * 2654435761) % config.vocabSize));
  const targets = BigInt64Array.from({ length: N }, (_, i) => ids[(i + 1) % N]!);
  const feeds = (s: number) => ({
    ids: hostTensor('int64', [B, T], ids), targets: hostTensor('int64', [N, 1], targets),
    mask: hostTensor('float32', [N, 1], new Float32Array(N).fill(1)), apply: hostTensor('bool', [], new Uint8Array([1])),
    invCount: hostTensor('float32', [], new Float32Array([1 / N])), adam: hostTensor('float32', [3], adamwScalars(optim, s)),
    ...(recompute ? { recompute_one: hostTensor('float32', [], [1]) } : {}),
  });
  for (let s = 1; s <= 2; s++) await prog.step(feeds(s));
  const t0 = performance.now();
  for (let s = 3; s < 3 + steps; s++) await prog.step(feeds(s));
  const ms = (performance.now() - t0) / steps;
  await prog.dispose();
  await weights.close();
  return { ms, tokensPerSecond: N / (ms / 1000), nodes: tg.nodes.total, trainable: P };
}

function torchBaseline(dir: string, B: number, T: number, steps: number, rank: number, alpha: number): { ms_per_step: number; tokens_per_s: number; blas: string } | null {
  if (!existsSync('/usr/bin/python3')) return null;
  try {
    const out = execFileSync('/usr/bin/python3', ['test/bench/torch_lora_step.py', dir, String(B), String(T), String(steps), String(rank), String(alpha)], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    return JSON.parse(out.trim().split('\n').pop()!);
  } catch (e) {
    console.error(`PyTorch baseline unavailable: ${(e as Error).message.split('\n')[0]}`);
    return null;
  }
}

export async function bench(report: (row: Record<string, unknown>) => void): Promise<void> {
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'lathe-bench-train-'));
  const configs: Cfg[] = [
    { name: 'reference (spike)', dir: async () => { const d = path.join(tmp, 'ref'); await createTinyModel('llama', d, { seed: 1, overrides: REFERENCE }); return d; }, B: 4, T: 256, rank: 8, alpha: 16, eps: ['cpu'] },
    { name: 'tiny-default', dir: async () => 'resources/models/tiny-default', B: 8, T: 64, rank: 8, alpha: 16, eps: ['cpu', 'webgpu'] },
  ];
  const only = process.env['LATHE_BENCH_EPS']?.split(',') as EpName[] | undefined;
  for (const c of configs) {
    const dir = await c.dir();
    const torch = torchBaseline(dir, c.B, c.T, 5, c.rank, c.alpha);
    for (const ep of c.eps.filter((e) => !only || only.includes(e))) {
      let r;
      try {
        r = await measure(dir, ep, c.B, c.T, c.rank, c.alpha, ep === 'webgpu' ? 5 : 10);
      } catch (e) {
        report({ config: c.name, ep, error: (e as Error).message.split('\n')[0] });
        continue;
      }
      report({
        config: c.name, ep: ep === 'webgpu' ? 'webgpu (lavapipe)' : ep, tokens_per_step: c.B * c.T, nodes: r.nodes, trainable: r.trainable,
        ms_per_step: r.ms.toFixed(1), tokens_per_s: Math.round(r.tokensPerSecond),
        torch_cpu_tokens_per_s: torch ? Math.round(torch.tokens_per_s) : 'n/a',
        ratio_vs_torch: torch ? (r.tokensPerSecond / torch.tokens_per_s).toFixed(2) + '×' : 'n/a',
        torch_blas: torch?.blas ?? 'n/a',
        peak_rss_mb: Math.round(process.resourceUsage().maxRSS / 1024),
      });
    }
  }
}
