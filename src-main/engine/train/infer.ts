/**
 * Forward-only uses of a model (+ an optional LoRA checkpoint): logits for given token ids, and
 * perplexity on a prepared dataset's held-out splits. Used by `lathe logits`, `lathe eval` and export checks.
 */
import { openModel } from '../models';
import { nonFiniteOutputError } from '../models/finite';
import { openDataset } from '../../data/pack/dataset';
import { EngineSession, hostTensor, type EpName, type HostTensor } from '../backends/onnx';
import { TokenRows, type LoraLayout } from '../llm/lora';
import { trainableLayout } from './trainable';
import { buildEvalGraph } from '../llm/train-graph';
import type { Checkpoint } from './checkpoints';
import { loadAdapter, loadLatheCheckpoint } from './adapter-folder';
import { evaluateSplit, feedsOf, makeBatch } from './batch';
import { resolveTrainConfig } from './config';
import { UserError, throwIfCancelled, type WorkOptions } from '../../util/progress';
import type { ModelConfig } from '../models/config';
import type { WeightsLayout } from '../models/layout';
import type { OnnxModel } from '../onnx/spec';
import { openWeightSource } from '../weights/source';
import type { WeightSource } from '../llm/forward';
import type { GraphBuilder } from '../graph/graph';
import { GpuSession } from '../backends/webgpu/session';

/** onnxruntime's EPs, or 'gpu': Lathe's own GPU backend (engine/backends/webgpu). */
export type InferEp = EpName | 'gpu';

/**
 * The eval graph's session on the chosen backend: the GPU backend plans the fused graph (bf16 weights read
 * in place) for the outputs in `fetch`; onnxruntime runs the ONNX model.
 */
export async function openEvalSession(build: (src: WeightSource) => Promise<{ model: OnnxModel; graph: GraphBuilder }>, src: WeightSource & { dir?: string },
  ep: InferEp, fetch: string[]): Promise<Pick<EngineSession, 'run' | 'dispose'>> {
  if (ep === 'gpu') {
    const g = await build({ ...src, bf16InPlace: true });
    return GpuSession.create(g.graph, fetch, { externalDataDir: src.dir, ...(src.bf16Compute ? { halfType: 'bfloat16' as const } : {}) });
  }
  const g = await build(src);
  return EngineSession.create(g.model, { ep, externalDataDir: src.dir });
}

/** A checkpoint folder, or a run folder (its latest checkpoint). PEFT adapters and Trainer folders: loadAdapter. */
export async function loadCheckpoint(dir: string): Promise<Checkpoint> {
  return loadLatheCheckpoint(dir);
}

export function adapterLayout(ck: Checkpoint, cfg: ModelConfig, layout: WeightsLayout): { lora: LoraLayout; rows: TokenRows; params: HostTensor } {
  const tc = resolveTrainConfig(ck.state.config);
  const { lora, rows } = trainableLayout(cfg, layout, tc);
  const p = ck.tensors.get('params');
  if (!p || p.length !== lora.size) {
    throw new UserError('adapter.mismatch', `The checkpoint in ${ck.dir} does not fit this model (${p?.length ?? 0} adapter values, expected ${lora.size}).`, 'Use the model the adapter was trained on.');
  }
  return { lora, rows, params: hostTensor('float32', [lora.size], p) };
}

export interface LogitsResult { vocabSize: number; tokens: number; logits: number[][] }

export async function computeLogits(modelDir: string, ids: number[], opts: { checkpoint?: string; ep?: InferEp } = {}): Promise<LogitsResult> {
  const { config, layout, weights } = await openModel(modelDir);
  try {
    if (ids.length === 0) throw new UserError('logits.empty', 'Give at least one token id.');
    const ad = opts.checkpoint ? await loadAdapter(opts.checkpoint, config, layout) : null;
    const rows = ad?.rows ?? new TokenRows(config.vocabSize, null);
    const bad = ids.find((i) => !Number.isInteger(i) || !rows.has(i));
    if (bad !== undefined) throw new UserError('logits.badId', `Token id ${bad} is outside the model's vocabulary (0..${config.vocabSize - 1}${rows.active ? ' and its new tokens' : ''}).`);
    const T = ids.length;
    const src = openWeightSource(weights);
    const ep = opts.ep ?? 'cpu';
    const s = await openEvalSession((w) => buildEvalGraph(config, layout, w, ad?.lora ?? null, { batch: 1, seqLen: T, fused: ep === 'gpu' }), src, ep, ['logits']);
    try {
      const batch = makeBatch([Uint32Array.from(ids)], T, rows, [0]); // no targets: logits only
      const out = await s.run({ ...feedsOf(batch, 1, T), ...(ad ? { params: ad.params } : {}) }, ['logits']);
      const flat = out['logits']!.data as Float32Array;
      // NaN logits are never handed out as results (JSON would print them as null): say which weight broke them.
      if (!flat.every(Number.isFinite)) throw await nonFiniteOutputError(weights, 'the logits', ad?.params.data as Float32Array | undefined);
      // back to token-id columns: base columns, then each new token's column at its own id
      const K = rows.classes;
      const V = Math.max(config.vocabSize, ...(ad?.lora.newRows?.ids.map((id) => id + 1) ?? []));
      const logits = Array.from({ length: T }, (_, t) => {
        const row = new Array<number>(V).fill(Number.NEGATIVE_INFINITY);
        for (let v = 0; v < config.vocabSize; v++) row[v] = flat[t * K + v]!;
        for (const [id, j] of rows.index) row[id] = flat[t * K + config.vocabSize + j]!;
        return row;
      });
      return { vocabSize: V, tokens: T, logits };
    } finally {
      await s.dispose();
    }
  } finally {
    await weights.close();
  }
}

export interface EvalResult { splits: Record<string, { loss: number; ppl: number; tokens: number }> }

export async function evaluatePerplexity(modelDir: string, datasetDir: string,
  opts: WorkOptions & { checkpoint?: string; ep?: InferEp; batch?: number; maxBlocks?: number } = {}): Promise<EvalResult> {
  const { config, layout, weights } = await openModel(modelDir);
  const ds = openDataset(datasetDir);
  try {
    const ad = opts.checkpoint ? await loadAdapter(opts.checkpoint, config, layout) : null;
    const T = ds.manifest.blockSize, B = opts.batch ?? 4;
    const src = openWeightSource(weights);
    const ep = opts.ep ?? 'cpu';
    const s = await openEvalSession((w) => buildEvalGraph(config, layout, w, ad?.lora ?? null, { batch: B, seqLen: T, packed: ds.manifest.kind === 'sft', fused: ep === 'gpu' }), src, ep, ['loss_sum']);
    const result: EvalResult = { splits: {} };
    try {
      const names = Object.keys(ds.manifest.splits).filter((n) => n.startsWith('val'));
      if (names.length === 0) throw new UserError('eval.noVal', `The dataset in ${datasetDir} has no held-out split.`, 'Prepare it again with a validation fraction above 0.');
      for (const name of names) {
        const split = ds.split(name);
        result.splits[name] = await evaluateSplit(s, split, ds.manifest, ad?.params ?? null, B, T, ad?.rows ?? new TokenRows(config.vocabSize, null), opts.maxBlocks ?? Infinity,
          (f) => { throwIfCancelled(opts.signal); opts.onProgress?.({ stage: `Evaluating ${name}`, fraction: f }); });
        split.close();
        if (!Number.isFinite(result.splits[name].loss)) throw await nonFiniteOutputError(weights, `the loss on ${name}`, ad?.params.data as Float32Array | undefined);
      }
      return result;
    } finally {
      await s.dispose();
    }
  } finally {
    await weights.close();
  }
}
