/**
 * Lathe's training settings translated once into the terms the other trainers share (Hugging Face
 * TrainingArguments, PEFT LoraConfig); each target writes its files from this plan. Anything that has no
 * faithful counterpart becomes a warning, shown by the CLI and listed in the job's README.
 */
import type { ModelConfig } from '../engine/models/config';
import type { TrainConfig } from '../engine/train/config';

export type HandoffTarget = 'accelerate' | 'axolotl' | 'llamafactory';
export const TARGETS: readonly HandoffTarget[] = ['accelerate', 'axolotl', 'llamafactory'];

export interface BatchPlan {
  /** Lathe's effective batch (blocks per optimizer step) on one device. */
  effective: number;
  perDevice: number;
  accumulation: number;
  /** perDevice × accumulation × gpus × nodes: equals `effective` unless a warning says otherwise. */
  achieved: number;
  worldSize: number;
}

/**
 * Per-device batch and accumulation for `world` processes keeping batchSize × gradAccum: the largest
 * per-device batch ≤ Lathe's that divides the effective batch evenly across the world.
 */
export function planBatch(batchSize: number, gradAccum: number, gpus: number, nodes: number): BatchPlan {
  const effective = batchSize * gradAccum;
  const worldSize = gpus * nodes;
  for (let b = batchSize; b >= 1; b--) {
    if (effective % (b * worldSize) === 0) {
      return { effective, perDevice: b, accumulation: effective / (b * worldSize), achieved: effective, worldSize };
    }
  }
  const accumulation = Math.max(1, Math.round(effective / worldSize));
  return { effective, perDevice: 1, accumulation, achieved: accumulation * worldSize, worldSize };
}

export interface SchedulePlan {
  /** transformers' lr_scheduler_type. */
  hfType: 'cosine' | 'cosine_with_min_lr' | 'linear' | 'constant_with_warmup';
  /** lr_scheduler_kwargs. */
  hfKwargs: Record<string, number>;
}

export function planSchedule(tc: TrainConfig): SchedulePlan {
  const s = tc.schedule;
  if (s.kind === 'constant') return { hfType: 'constant_with_warmup', hfKwargs: {} };
  if (s.kind === 'linear') return { hfType: 'linear', hfKwargs: {} };
  return s.minLrRatio > 0 ? { hfType: 'cosine_with_min_lr', hfKwargs: { min_lr_rate: s.minLrRatio } } : { hfType: 'cosine', hfKwargs: {} };
}

/** transformers' decoder-layer class per family (FSDP auto wrap). */
export function decoderLayerClass(cfg: ModelConfig): string {
  const byFamily: Record<string, string> = {
    llama: 'LlamaDecoderLayer', mistral: 'MistralDecoderLayer', qwen2: 'Qwen2DecoderLayer', qwen3: 'Qwen3DecoderLayer',
    smollm3: 'SmolLM3DecoderLayer', gpt2: 'GPT2Block',
  };
  return byFamily[cfg.family] ?? cfg.architecture.replace(/For(CausalLM|LMHeadModel)$/, 'DecoderLayer');
}

export interface HandoffPlan {
  target: HandoffTarget;
  tc: TrainConfig;
  model: ModelConfig;
  kind: 'pretrain' | 'sft';
  blockSize: number;
  batch: BatchPlan;
  schedule: SchedulePlan;
  /** PEFT target_modules (the same names Lathe's PEFT export writes). */
  targetModules: string[];
  /** New tokens of the extended tokenizer (id and the base ids each replaces), [] without one. */
  newTokens: { id: number; baseIds: number[] }[];
  gpus: number;
  nodes: number;
  /** Settings the target cannot carry over exactly; shown on screen and in the README. */
  warnings: string[];
  /** Notes on what is translated with a small, known difference. */
  notes: string[];
}

/** Warnings shared by every target; each target adds its own. */
export function commonWarnings(tc: TrainConfig, batch: BatchPlan): string[] {
  const w: string[] = [];
  if (batch.achieved !== batch.effective) {
    w.push(`batch: Lathe's effective batch of ${batch.effective} blocks (batchSize ${tc.batchSize} × gradAccum ${tc.gradAccum}) cannot be split evenly over ${batch.worldSize} GPUs; the job uses ${batch.perDevice} per GPU × ${batch.accumulation} accumulation × ${batch.worldSize} GPUs = ${batch.achieved} blocks per step.`);
  }
  if (tc.schedule.kind === 'linear' && tc.schedule.minLrRatio > 0) {
    w.push(`schedule.minLrRatio: ${tc.schedule.minLrRatio} with a linear schedule has no counterpart (transformers' linear schedule decays to 0).`);
  }
  if (tc.sampleEvery > 0 && tc.samplePrompts.length > 0) {
    w.push(`samplePrompts/sampleEvery: sample generations during training are not carried over (${tc.samplePrompts.length} prompts every ${tc.sampleEvery} steps); chat with the imported adapter in Lathe instead.`);
  }
  w.push(`maxBadSteps: ${tc.maxBadSteps} (stop after consecutive non-finite losses) has no counterpart; the other trainer keeps going (watch the loss).`);
  if (tc.ep !== 'auto') w.push(`ep: "${tc.ep}" does not apply: the job runs on the cluster's CUDA GPUs.`);
  return w;
}

export function commonNotes(tc: TrainConfig, plan: Pick<HandoffPlan, 'kind' | 'target'>): string[] {
  return [
    plan.target === 'accelerate'
      ? 'loss normalization: the mean over all loss tokens of an optimizer step (all micro-batches and GPUs), as Lathe (transformers >= 4.46: num_items_in_batch, average_tokens_across_devices).'
      : 'loss normalization: Lathe takes the mean over all loss tokens of an optimizer step; recent transformers (>= 4.46) under the target does the same per device, older versions average per micro-batch.',
    'precision: the base model runs in bfloat16 on the GPUs (Lathe computes in float32 unless compute is float16); LoRA weights and the optimizer stay float32.',
    'data order: the rows are shuffled by the other trainer\'s sampler with the same seed, not in Lathe\'s order; the rows and the loss mask are exactly Lathe\'s.',
    'warmup: transformers warms up as lr·step/warmup from step 0, Lathe as lr·(step+1)/warmup; the two differ by one step.',
    ...(plan.kind === 'sft' ? ['loss: SFT rows carry labels -100 wherever Lathe does not compute a loss (prompt tokens, padding, the first token of each packed sample).'] : []),
    ...(tc.quantization === 'nf4' ? ['QLoRA: bitsandbytes NF4 with double quantization, as Lathe; Lathe dequantizes in the graph, bitsandbytes in CUDA kernels (the same format, rounding may differ).'] : []),
  ];
}
