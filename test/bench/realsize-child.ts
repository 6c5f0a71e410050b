/**
 * One real-size LoRA/QLoRA step in its own process (peak RSS is per process): opens a model folder made
 * by test/bench/realsize.ts, builds the train graph through the weight cache (openWeightSource, as the
 * trainer does), creates the session, runs `steps` steps and prints one JSON line: peak RSS, times, the
 * .onnx size. Args: one JSON object (RealsizeJob).
 */
import { openModel } from '../../src-main/engine/models';
import { buildLoraLayout, initLoraParams } from '../../src-main/engine/llm/lora';
import { buildTrainGraph } from '../../src-main/engine/llm/train-graph';
import { adamwScalars } from '../../src-main/engine/nn/layers';
import { encodeModel } from '../../src-main/engine/onnx/encode';
import { Program } from '../../src-main/engine/backends/onnx/program';
import { hostTensor, toNumbers } from '../../src-main/engine/runtime/tensor';
import type { EngineSessionOptions, EpName } from '../../src-main/engine/backends/onnx/session';
import { openWeightSource } from '../../src-main/engine/weights/source';
import { WEBGPU_VOCAB_CHUNK_BYTES } from '../../src-main/engine/llm/forward';

export interface RealsizeJob {
  modelDir: string;
  batch: number;
  seqLen: number;
  rank: number;
  quantize: 'none' | 'nf4';
  compute?: 'float32' | 'float16';
  recompute?: boolean;
  ep: EpName;
  steps: number;
  memory?: EngineSessionOptions['memory'];
  threads?: number;
}

const job = JSON.parse(process.argv[2]!) as RealsizeJob;
const optim = { lr: 1e-4, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0, maxGradNorm: 1 };
const rss = () => process.memoryUsage().rss;
const t0 = performance.now();
const { config, layout, weights } = await openModel(job.modelDir);
const src = openWeightSource(weights, { quantize: job.quantize, compute: job.compute });
if (job.ep === 'webgpu') src.vocabChunkBytes = WEBGPU_VOCAB_CHUNK_BYTES; // as the trainer does
const lora = buildLoraLayout(config, layout, { rank: job.rank, alpha: 2 * job.rank, dropout: 0, rslora: false, targets: 'all-linear', seed: 3 });
const B = job.batch, T = job.seqLen, N = B * T, P = lora.size;
const tg = await buildTrainGraph(config, layout, src, lora, { batch: B, seqLen: T, recompute: job.recompute }, optim);
const graphMs = performance.now() - t0;
const onnxBytes = encodeModel(tg.model).byteLength;
const rssAfterGraph = rss();
const t1 = performance.now();
const p = await Program.create({ model: tg.model, state: tg.state, fetch: tg.fetch }, { ep: job.ep, externalDataDir: src.dir, memory: job.memory, threads: job.threads });
const sessionMs = performance.now() - t1;
const rssAfterSession = rss();
const z = () => hostTensor('float32', [P], new Float32Array(P));
await p.init({ params: hostTensor('float32', [P], initLoraParams(lora, 3)), gacc: z(), m: z(), v: z() });
const ids = new BigInt64Array(N), targets = new BigInt64Array(N);
for (let i = 0; i < N; i++) ids[i] = BigInt((i * 7919) % config.vocabSize);
for (let i = 0; i < N; i++) targets[i] = ids[(i + 1) % N]!;
const times: number[] = [];
let loss = 0;
for (let s = 1; s <= job.steps; s++) {
  const ts = performance.now();
  const feeds: Record<string, ReturnType<typeof hostTensor>> = {
    ids: hostTensor('int64', [B, T], ids), targets: hostTensor('int64', [N, 1], targets),
    mask: hostTensor('float32', [N, 1], new Float32Array(N).fill(1)),
    apply: hostTensor('bool', [], new Uint8Array([1])), invCount: hostTensor('float32', [], [1 / N]),
    adam: hostTensor('float32', [3], adamwScalars(optim, s)),
  };
  if (job.recompute) feeds['recompute_one'] = hostTensor('float32', [], [1]);
  const o = await p.step(feeds);
  times.push(performance.now() - ts);
  loss = toNumbers(o.loss_sum!)[0]! / N;
}
await p.dispose();
await weights.close();
console.log(JSON.stringify({
  peakRss: process.resourceUsage().maxRSS * 1024, rssAfterGraph, rssAfterSession, graphMs, sessionMs, stepMs: times[times.length - 1],
  loss, nodes: tg.nodes.total, loraParams: P, onnxBytes, converted: src.cache?.written ?? 0,
}));
