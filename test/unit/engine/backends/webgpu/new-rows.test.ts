/**
 * Trainable new-token rows (tokenizer extension) on Lathe's GPU backend: the fused graph's loss is the frozen
 * rows' LinearCrossEntropy (a column bias masking re-used ids, its lse differentiated) combined with the new
 * rows' [N, r] logits (forward.ts newRowsLoss), so no [N, V + r] logits exist; its loss, gradients and AdamW
 * steps equal the CPU EP's plain graph (the logits path), tied and untied, with a re-used id and new ids.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { parseModelConfig, weightsLayout } from '../../../../../src-main/engine/models';
import { addNewRows, buildLoraLayout, TokenRows } from '../../../../../src-main/engine/llm/lora';
import { buildTrainGraph } from '../../../../../src-main/engine/llm/train-graph';
import { Program, hostTensor, type HostTensor } from '../../../../../src-main/engine/backends/onnx';
import { GpuProgram, closeGpu, openGpu, planGraph } from '../../../../../src-main/engine/backends/webgpu';
import { openWeightSource } from '../../../../../src-main/engine/weights/source';
import { adamwScalars } from '../../../../../src-main/engine/nn/layers';
import { feedsOf, makeBatch } from '../../../../../src-main/engine/train/batch';
import { rel } from '../../../../helpers/numeric';
import { REAL_SHAPES, layoutOnlyWeights } from '../../../../bench/webgpu';
import { formatErrors, loraStart, loraStepFixture, runSteps, shortRun, stepErrors, stepMetricErrors, stepState, trainCpuAndGpu } from '../../../../helpers/lora-step';
import { tinyModel } from '../../../../helpers/tiny';
import { tempDir } from '../../../../helpers/services';
import { Rng } from '../../../../../src-main/engine/models/rng';

const optim = { lr: 1e-2, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01, maxGradNorm: 1 };

beforeAll(async () => { await openGpu(); }, 60_000);
afterAll(() => closeGpu());

describe('GPU backend: trainable new-token rows', () => {
  for (const [arch, half] of [['llama', false], ['gpt2', false], ['llama', true]] as const) {
    it(`${arch}${half ? ' f16 compute' : ''}: the fused loss (no [N, V + r] logits) gives the CPU EP's loss, gradients and 2 AdamW steps`, async () => {
      const { dir, config, layout, weights, lora: base } = await loraStepFixture(arch, { prefix: 'lathe-gpu-nr-', ...(half ? { dtype: 'f16' as const } : {}) });
      const V = config.vocabSize;
      const lora = addNewRows(base, config, [5, V, V + 1]); // id 5 re-used: its base column is masked
      const rows = new TokenRows(V, lora.newRows);
      const B = 2, T = 8;
      const src = openWeightSource(weights, half ? { compute: 'float16' } : {});
      // the reference: the CPU EP's plain graph in f32 (its f16 graph cannot run new rows: onnxruntime's CPU EP has no
      // f16 ScatterElements with add, which the rows' Gather gradient is)
      const ref = half ? openWeightSource(weights) : src;
      const cpu = await buildTrainGraph(config, layout, ref, lora, { batch: B, seqLen: T }, optim);
      const gpuGraph = await buildTrainGraph(config, layout, src, lora, { batch: B, seqLen: T, fused: true }, optim);
      const ops = new Set(gpuGraph.graph.nodes.map((n) => n.op));
      expect(ops.has('LinearCrossEntropy')).toBe(true);
      expect(ops.has('SoftmaxCrossEntropy')).toBe(false);
      // ids: new tokens (V, V + 1), the re-used 5, and base ids; so targets fall on new columns, the re-used
      // row's column V + 0 and base columns
      const ids = Array.from({ length: B }, (_, b) => Uint32Array.from({ length: T }, (_, t) => (t % 3 === 0 ? V + ((b + t) % 2) : t % 4 === 1 ? 5 : (b * 13 + t * 7) % 40 + 6)));
      const batch = makeBatch(ids, T, rows);
      const targets = batch.targets;
      expect(Array.from(targets).some((t) => Number(t) >= V)).toBe(true);
      const feeds = (s: number, apply: boolean): Record<string, HostTensor> => ({
        ...feedsOf(batch, B, T), apply: hostTensor('bool', [], new Uint8Array([apply ? 1 : 0])),
        invCount: hostTensor('float32', [], new Float32Array([1 / B / T])), adam: hostTensor('float32', [3], Float32Array.from(adamwScalars(optim, s))),
      });
      const p0 = loraStart(lora);
      for (let i = lora.newRows!.embedOffset; i < lora.size; i++) p0[i] = 0.05 * Math.cos(1.3 * i); // rows non-zero
      const want = await runSteps(await Program.create({ model: cpu.model, state: cpu.state, fetch: cpu.fetch }, { ep: 'cpu', threads: 1, externalDataDir: src.dir }), stepState(p0), feeds, 2);
      const got = await runSteps(await GpuProgram.create({ graph: gpuGraph.graph, state: gpuGraph.state, fetch: gpuGraph.fetch }, { externalDataDir: dir }), stepState(p0), feeds, 2);
      await weights.close();
      const e = stepErrors(got, want);
      console.log(`${arch}${half ? ' f16 compute' : ''} new rows: ${formatErrors(e)}`);
      const rowGrad = (g: Float32Array) => g.subarray(lora.newRows!.embedOffset);
      expect(rowGrad(want.grad).some((x) => x !== 0)).toBe(true);
      // f32: as train-step.test.ts (the update after AdamW as a whole, L2: Adam's 1/√v magnifies rounding); f16
      // compute against f32: f16 precision (measured loss 1.2e-5, gradient 4.4e-3, update 4.5e-2)
      const tol = half ? { loss: 1e-3, grad: 3e-2, update: 1e-1 } : { loss: 1e-5, grad: 1e-5, update: 1e-3 };
      expect(e.loss).toBeLessThan(tol.loss);
      expect(e.grad).toBeLessThan(tol.grad);
      expect(rel(rowGrad(got.grad), rowGrad(want.grad))).toBeLessThan(tol.grad);
      expect(e.losses).toBeLessThan(tol.loss);
      expect(e.update).toBeLessThan(tol.update);
    }, 300_000);
  }

  it('trainer: an extended tokenizer (8 new tokens) trains 3 steps on `--ep gpu` with the CPU EP\'s losses, grad norms and validation', async () => {
    const { trainDomainTokenizer, extendTokenizerDir } = await import('../../../../../src-main/tokenizer/service');
    const { prepareCorpus } = await import('../../../../../src-main/data/prepare');
    const model = await tinyModel('llama');
    const base = tempDir('lathe-gpu-nr-train-');
    const corpus = path.join(base, 'corpus');
    mkdirSync(corpus);
    const rng = new Rng(5);
    const words = ['spindle', 'tailstock', 'headstock', 'faceplate', 'chuck', 'gouge', 'skew', 'parting', 'tool', 'rest', 'the', 'a', 'turn'];
    for (let d = 0; d < 12; d++) writeFileSync(path.join(corpus, `d${d}.txt`), Array.from({ length: 200 }, () => words[Math.floor(rng.next() * words.length)]).join(' ') + '.\n');
    const ext = path.join(base, 'tok');
    await extendTokenizerDir({ baseDir: model, candidates: await trainDomainTokenizer({ baseDir: model, corpus: [corpus], maxCandidates: 50 }), topN: 8, outDir: ext });
    const dataset = path.join(base, 'ds');
    await prepareCorpus({ inputs: [corpus], out: dataset, tokenizerDir: ext, blockSize: 32, seed: 1, valFraction: 0.1 });
    const { cpu, gpu } = await trainCpuAndGpu({ ...shortRun(model, dataset, 3), tokenizer: ext });
    expect(gpu.result.ep).toBe('gpu');
    expect(gpu.steps.length).toBe(3);
    const d = stepMetricErrors(gpu.steps, cpu.steps);
    console.log(`extended tokenizer, 3 steps gpu vs cpu: loss ${d.loss.toExponential(1)}, grad norm ${d.gradNorm.toExponential(1)}`);
    expect(d.loss).toBeLessThan(1e-5);
    expect(d.gradNorm).toBeLessThan(1e-4);
    expect(Object.keys(cpu.result.val).length).toBeGreaterThan(0);
    for (const [k, v] of Object.entries(cpu.result.val)) expect(Math.abs(gpu.result.val[k]!.loss - v.loss) / v.loss).toBeLessThan(1e-5);
  }, 600_000);

  it('plan (no device): Llama-3.2-1B at B1×T2048 with 3 new rows holds no [N, V] logits', async () => {
    const cfg = parseModelConfig(REAL_SHAPES['Llama-3.2-1B']!);
    const lay = weightsLayout(cfg);
    const V = cfg.vocabSize, N = 2048;
    const lora = addNewRows(buildLoraLayout(cfg, lay, { rank: 16, alpha: 32, dropout: 0, rslora: false, targets: 'all-linear', seed: 1 }), cfg, [7, V, V + 1]);
    const src = { weights: layoutOnlyWeights(cfg), dir: '/nonexistent', bf16InPlace: true };
    const planOf = async (l: typeof lora) => {
      const g = await buildTrainGraph(cfg, lay, src, l, { batch: 1, seqLen: N, fused: true }, optim);
      return planGraph(g.graph, { outputs: [...g.fetch, ...g.state.map((s) => s.output)], state: g.state.map((s) => s.input) });
    };
    const plan = await planOf(lora);
    const act = plan.buffers.filter((b) => b.kind === 'temp' || b.kind === 'output');
    // one vocabulary chunk of logits at a time (64 MiB), never the 1 GiB [N, V] f32 logits
    expect(Math.max(...act.map((b) => b.bytes))).toBeLessThanOrEqual(64 * 2 ** 20);
    // the same activations as without new rows but for the embedding's blend of new rows (x + isNew · (rows[idx] − x):
    // [N, C] pieces) and the [N, r] / [N, 1] / [r, C] ones: megabytes, where the [N, V + r] logits were a gigabyte
    const without = await planOf(buildLoraLayout(cfg, lay, { rank: 16, alpha: 32, dropout: 0, rslora: false, targets: 'all-linear', seed: 1 }));
    console.log(`Llama-3.2-1B B1×T2048 temp bytes: ${plan.bytes.temp} with 3 new rows, ${without.bytes.temp} without`);
    expect(plan.bytes.temp - without.bytes.temp).toBeLessThan(2 * N * cfg.hiddenSize * 4 + 16 * N * 4 + 8 * 3 * cfg.hiddenSize * 4 + 4 * V);
  }, 120_000);
});
