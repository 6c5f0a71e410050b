/**
 * One measured training run in its own process (peak RSS is per process): builds a tiny-architecture
 * model of the given size, runs `steps` LoRA or QLoRA steps, prints one JSON line with peak RSS and
 * step time. Spawned by test/bench/memory.ts and test/unit/memory; args: one JSON object (ChildJob).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createTinyModel, openModel } from '../../src-main/engine/models';
import { buildLoraLayout, initLoraParams } from '../../src-main/engine/llm/lora';
import { buildTrainGraph } from '../../src-main/engine/llm/train-graph';
import { adamwScalars } from '../../src-main/engine/nn/layers';
import { Program } from '../../src-main/engine/backends/onnx/program';
import { hostTensor, toNumbers } from '../../src-main/engine/runtime/tensor';
import { PagedMoments, pagedProgramSpec } from '../../src-main/engine/memory/paged';
import type { EpName } from '../../src-main/engine/backends/onnx/session';
import { openWeightSource } from '../../src-main/engine/weights/source';

export interface ChildJob {
  arch: string;
  overrides: Record<string, unknown>;
  batch: number;
  seqLen: number;
  rank: number;
  quantize: 'none' | 'nf4';
  paged?: boolean;
  ep: EpName;
  steps: number;
  /** A model made by the caller (createTinyModel with arch + overrides); made here when absent. */
  modelDir?: string;
}

const job = JSON.parse(process.argv[2]!) as ChildJob;
const optim = { lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0, maxGradNorm: 1 };
// the parent usually makes the model, so this process's peak holds only the training run
const own = !job.modelDir;
const dir = job.modelDir ?? join(mkdtempSync(join(tmpdir(), 'lathe-mem-')), 'model');
try {
  if (own) await createTinyModel(job.arch, dir, { seed: 1, overrides: job.overrides });
  const { config, layout, weights } = await openModel(dir);
  const lora = buildLoraLayout(config, layout, { rank: job.rank, alpha: 2 * job.rank, dropout: 0, rslora: false, targets: 'all-linear', seed: 3 });
  const B = job.batch, T = job.seqLen, N = B * T, P = lora.size;
  // as the trainer: QLoRA codes (and bf16 conversions) through the weight cache
  const src = openWeightSource(weights, { quantize: job.quantize });
  const tg = await buildTrainGraph(config, layout, src, lora, { batch: B, seqLen: T }, optim);
  const base = { model: tg.model, state: tg.state, fetch: tg.fetch };
  const spec = job.paged ? pagedProgramSpec(base) : base;
  const p = await Program.create(spec, { ep: job.ep, externalDataDir: src.dir });
  const z = () => hostTensor('float32', [P], new Float32Array(P));
  const moments = job.paged ? new PagedMoments(P) : null;
  await p.init({ params: hostTensor('float32', [P], initLoraParams(lora, 3)), gacc: z(), ...(moments ? {} : { m: z(), v: z() }) });
  const ids = new BigInt64Array(N), targets = new BigInt64Array(N);
  for (let i = 0; i < N; i++) ids[i] = BigInt(((i * 7) % 40) + 3);
  for (let i = 0; i < N; i++) targets[i] = ids[(i + 1) % N]!;
  const times: number[] = [];
  let loss = 0;
  for (let s = 1; s <= job.steps; s++) {
    const t0 = performance.now();
    let o = await p.step({
      ids: hostTensor('int64', [B, T], ids), targets: hostTensor('int64', [N, 1], targets),
      mask: hostTensor('float32', [N, 1], new Float32Array(N).fill(1)),
      apply: hostTensor('bool', [], new Uint8Array([1])), invCount: hostTensor('float32', [], [1 / N]),
      adam: hostTensor('float32', [3], adamwScalars(optim, s)), ...(moments ? moments.feeds() : {}),
    });
    if (moments) o = moments.take(o);
    times.push(performance.now() - t0);
    loss = toNumbers(o.loss_sum!)[0]! / N;
  }
  await p.dispose();
  await weights.close();
  const steady = times.slice(1).sort((a, b) => a - b);
  const med = steady[Math.floor(steady.length / 2)] ?? times[0]!;
  console.log(JSON.stringify({
    peakRss: process.resourceUsage().maxRSS * 1024, stepMs: med, tokensPerSecond: N / (med / 1000), loss, nodes: tg.nodes.total, loraParams: P,
  }));
} finally {
  if (own) rmSync(dir, { recursive: true, force: true });
}
