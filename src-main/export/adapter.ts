/**
 * The trained adapter as export sees it: a LoRA layout + the flat f32 params of a checkpoint, and the
 * per-module weight update ΔW = scale · B·A, in the base weight's storage orientation.
 *
 * Shapes: A [r, in], B [out, r]; ΔW [out, in] for nn.Linear, [in, out] for GPT-2 Conv1D (PEFT's
 * fan_in_fan_out), so it adds element-wise to the stored weight.
 */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import type { ModelConfig } from '../engine/models/config';
import type { WeightsLayout } from '../engine/models/layout';
import type { LoraLayout, LoraModule } from '../engine/llm/lora';
import { loadAdapter } from '../engine/train/adapter-folder';
import { resolveTrainConfig, type TrainConfig } from '../engine/train/config';
import { MetricsLog } from '../engine/train/metrics';
import { UserError } from '../util/progress';

export interface TrainedAdapter {
  lora: LoraLayout;
  params: Float32Array;
  /** The checkpoint folder the params came from. */
  checkpointDir: string;
  step: number;
  train: TrainConfig;
  /** The run folder (parent of checkpoints/), when the checkpoint sits in one. */
  runDir: string | null;
}

/** A run folder (its latest checkpoint) or a checkpoint folder -> the adapter for this model. */
export async function loadTrainedAdapter(dir: string, cfg: ModelConfig, layout: WeightsLayout): Promise<TrainedAdapter> {
  if (!existsSync(dir)) {
    throw new UserError('export.adapter-missing', `The adapter folder ${dir} does not exist.`, 'Pass a training run folder or one of its checkpoints/step-NNNNNN folders.');
  }
  let ad;
  try {
    // Lathe runs and checkpoints, PEFT LoRA adapters and Trainer checkpoint-N folders (engine/train/adapter-folder.ts).
    ad = await loadAdapter(dir, cfg, layout);
  } catch (err) {
    if (err instanceof UserError && (err.code === 'checkpoint.unreadable' || err.code === 'checkpoint.format')) {
      throw new UserError(err.code, `${dir} holds no readable training checkpoint: ${err.message}`, 'Pass a training run folder (with checkpoints/) or one checkpoints/step-NNNNNN folder.');
    }
    throw err;
  }
  const params = ad.params.data as Float32Array;
  if (!ad.checkpoint || ad.peft) {
    // A PEFT adapter: its own settings stand in for a training config (the model card says where it came from).
    const train = resolveTrainConfig({
      model: ad.info.baseModel ?? '(PEFT adapter)', dataset: '(unknown: trained outside Lathe)', out: ad.info.dir,
      lora: { rank: ad.lora.rank, alpha: ad.peft?.alpha ?? ad.lora.rank, rslora: ad.peft?.rslora ?? false, targets: [...new Set(ad.lora.modules.map((m) => m.role))] },
    });
    return { lora: ad.lora, params, checkpointDir: ad.info.dir, step: ad.info.step ?? 0, train, runDir: null };
  }
  const ck = ad.checkpoint;
  const abs = path.resolve(ck.dir);
  const parent = path.dirname(path.dirname(abs));
  const runDir = path.basename(path.dirname(abs)) === 'checkpoints' ? parent : null;
  return { lora: ad.lora, params, checkpointDir: abs, step: ck.state.step, train: resolveTrainConfig(ck.state.config), runDir };
}

/** A [r, in] and B [out, r] of one module, as views into the flat vector. */
export function moduleAB(m: LoraModule, rank: number, params: Float32Array): { A: Float32Array; B: Float32Array } {
  return {
    A: params.subarray(m.aOffset, m.aOffset + rank * m.inFeatures),
    B: params.subarray(m.bOffset, m.bOffset + m.outFeatures * rank),
  };
}

/**
 * W += scale · B·A in place. `inOut`: W is stored [in, out] (Conv1D) and gets (B·A)ᵀ.
 * Sums over r in f64 so the only rounding is the final one into W's f32.
 */
export function addLoraDelta(W: Float32Array, m: LoraModule, rank: number, scale: number, params: Float32Array, inOut: boolean): void {
  const { A, B } = moduleAB(m, rank, params);
  const O = m.outFeatures, I = m.inFeatures, r = rank;
  if (W.length !== O * I) throw new Error(`${m.module}: weight has ${W.length} values, LoRA expects ${O}×${I}.`);
  const row = new Float64Array(I);
  for (let o = 0; o < O; o++) {
    // row = Σ_k B[o, k] · A[k, :]
    row.fill(0);
    for (let k = 0; k < r; k++) {
      const b = B[o * r + k]!;
      if (b === 0) continue;
      const a = k * I;
      for (let i = 0; i < I; i++) row[i]! += b * A[a + i]!;
    }
    if (inOut) for (let i = 0; i < I; i++) W[i * O + o]! += scale * row[i]!; // W [in, out]
    else for (let i = 0, w = o * I; i < I; i++) W[w + i]! += scale * row[i]!; // W [out, in]
  }
}

export interface RunSummaryInfo {
  steps: number | null;
  finalLoss: number | null;
  val: Record<string, { loss: number; ppl: number }>;
  valBefore: Record<string, { loss: number; ppl: number }>;
}

/** Training results for the model card: summary.json if the run finished, else the last metrics. */
export function readRunSummary(runDir: string | null): RunSummaryInfo | null {
  if (!runDir) return null;
  const summaryFile = path.join(runDir, 'summary.json');
  if (existsSync(summaryFile)) {
    try {
      const s = JSON.parse(readFileSync(summaryFile, 'utf8')) as Partial<RunSummaryInfo>;
      return { steps: s.steps ?? null, finalLoss: s.finalLoss ?? null, val: s.val ?? {}, valBefore: s.valBefore ?? {} };
    } catch {
      // fall through to metrics.jsonl
    }
  }
  const records = MetricsLog.read(path.join(runDir, 'metrics.jsonl'));
  if (records.length === 0) return null;
  const train = records.filter((r) => r.kind === 'train');
  const last = train.at(-1);
  const val: RunSummaryInfo['val'] = {};
  const valBefore: RunSummaryInfo['val'] = {};
  for (const r of records) {
    if (r.kind !== 'val' || typeof r['split'] !== 'string' || typeof r['loss'] !== 'number') continue;
    const v = { loss: r['loss'], ppl: typeof r['ppl'] === 'number' ? r['ppl'] : Math.exp(r['loss']) };
    if (r.step === 0) valBefore[r['split']] = v;
    else val[r['split']] = v; // later records overwrite: the last evaluation wins
  }
  return { steps: last?.step ?? null, finalLoss: typeof last?.['loss'] === 'number' ? last['loss'] : null, val, valBefore };
}
