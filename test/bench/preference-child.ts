/**
 * One measurement for test/bench/preference.ts, in its own process so peak RSS is its own:
 *   node --import tsx preference-child.ts graph|input|refpass [MODEL_DIR]
 * graph: DPO step with the reference forward in the graph; input: DPO step fed precomputed reference
 * log-probs; refpass: the forward-only pass that would precompute them (per batch of pairs).
 */
import { createTinyModel, openModel } from '../../src-main/engine/models';
import { buildLoraLayout, initLoraParams } from '../../src-main/engine/llm/lora';
import { buildPreferenceTrainGraph } from '../../src-main/engine/llm/preference-graph';
import { buildEvalGraph } from '../../src-main/engine/llm/train-graph';
import { EngineSession, Program, hostTensor } from '../../src-main/engine/backends/onnx';
import { adamwScalars } from '../../src-main/engine/nn/layers';
import { existsSync } from 'node:fs';

const mode = process.argv[2] as 'graph' | 'input' | 'refpass';
const dir = process.argv[3] ?? '/tmp/lathe-bench-preference-model';
if (!existsSync(dir)) await createTinyModel('llama', dir, { seed: 1, overrides: { vocab_size: 4096, hidden_size: 256, num_hidden_layers: 4, num_attention_heads: 8, num_key_value_heads: 4, intermediate_size: 704, max_position_embeddings: 1024 } });
const { config, layout, weights } = await openModel(dir);
const lora = buildLoraLayout(config, layout, { rank: 8, alpha: 16, dropout: 0, rslora: false, targets: 'all-linear', seed: 1 });
const P = 2, R = 2 * P, T = 256, N = R * T, S = lora.size;
const ids = BigInt64Array.from({ length: N }, (_, i) => BigInt((i * 7919) % 4096));
const mask = Float32Array.from({ length: N }, (_, i) => (i % T >= 64 ? 1 : 0)); // 64 prompt tokens, 192 completion
const data = { ids: hostTensor('int64', [R, T], ids), targets: hostTensor('int64', [N, 1], ids), mask: hostTensor('float32', [N, 1], mask) };
const rss0 = process.resourceUsage().maxRSS;
let ms = Infinity, nodes = 0;
/** The fastest of 5 runs (the host is shared: the minimum is the least disturbed). */
const timed = async (f: () => Promise<unknown>) => { const t0 = performance.now(); await f(); ms = Math.min(ms, performance.now() - t0); };
if (mode === 'refpass') {
  const ev = await buildEvalGraph(config, layout, { weights, dir }, null, { batch: R, seqLen: T });
  nodes = ev.nodes;
  const s = await EngineSession.create(ev.model, { ep: 'cpu', externalDataDir: dir });
  await s.run(data, ['loss_sum']);
  for (let k = 0; k < 5; k++) await timed(() => s.run(data, ['loss_sum']));
} else {
  const optim = { lr: 1e-4, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0, maxGradNorm: 1 };
  const tg = await buildPreferenceTrainGraph(config, layout, { weights, dir }, lora, { pairs: P, seqLen: T, refInput: mode === 'input' }, { method: 'dpo', beta: 0.1, loss: 'sigmoid', labelSmoothing: 0, orpoLambda: 0 }, optim);
  nodes = tg.nodes.total;
  const prog = await Program.create({ model: tg.model, state: tg.state, fetch: tg.fetch }, { ep: 'cpu', externalDataDir: dir });
  const z = () => hostTensor('float32', [S], new Float32Array(S));
  await prog.init({ params: hostTensor('float32', [S], initLoraParams(lora, 1)), m: z(), v: z(), gacc: z() });
  const feeds = (s: number) => ({
    ...data, pairs: hostTensor('float32', [P], new Float32Array(P).fill(1)), apply: hostTensor('bool', [], new Uint8Array([1])),
    invCount: hostTensor('float32', [], [1 / P]), adam: hostTensor('float32', [3], adamwScalars(optim, s)),
    ...(mode === 'input' ? { ref_logps_in: hostTensor('float32', [R], new Float32Array(R).fill(-1000)) } : {}),
  });
  await prog.step(feeds(1));
  for (let s = 2; s <= 6; s++) await timed(() => prog.step(feeds(s)));
}
console.log(JSON.stringify({ mode, nodes, ms: ms.toFixed(0), peakMB: Math.round(process.resourceUsage().maxRSS / 1024), beforeMB: Math.round(rss0 / 1024) }));
