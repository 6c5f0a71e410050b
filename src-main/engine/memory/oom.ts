/**
 * Out-of-memory at run time: recognise onnxruntime's (and V8's) allocation failures, and turn them
 * into a UserError in plain words with the smaller configuration suggestFit finds. The trainer
 * (train/trainer.ts) wraps its run in withOomGuidance: its own `finally` releases the sessions and
 * the weights, checkpoints already written stay on disk, so nothing saved is lost.
 *
 * Messages seen (onnxruntime-node 1.30, this machine):
 *   CPU EP     "...BFCArena::AllocateRawInternal... Failed to allocate memory for requested buffer of size N"
 *   WebGPU EP  log "vkCreateBuffer failed with VK_ERROR_OUT_OF_DEVICE_MEMORY" (the thrown text can be vaguer)
 *   CUDA EP    "CUDA failure 2: out of memory", "CUBLAS_STATUS_ALLOC_FAILED" (from ORT's source, not run here)
 *   V8         "RangeError: Array buffer allocation failed"
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { UserError } from '../../util/progress';
import type { ModelConfig } from '../models/config';
import { readModelConfig } from '../models/validate';
import { estimateMemory, formatBytes, planFromTrainConfig, type MemoryEp, type MemoryPlan } from './estimate';
import { suggestFit } from './fit';

const OOM = /failed to allocate|out of memory|OUT_OF_(DEVICE|HOST)_MEMORY|bad_alloc|bad allocation|Array buffer allocation failed|Cannot allocate memory|ENOMEM|_ALLOC_FAILED|cudaErrorMemoryAllocation|GPUOutOfMemoryError/i;

export function isOutOfMemory(err: unknown): boolean {
  if (err instanceof UserError) return false;
  const text = err instanceof Error ? `${err.name}: ${err.message}` : String(err);
  return OOM.test(text);
}

export interface OomContext {
  model: ModelConfig;
  plan: MemoryPlan;
  ep: MemoryEp;
  /** Device memory known to be available, if any. */
  budgetBytes?: number;
  /** Where the run's checkpoints are (named in the message). */
  checkpointsDir?: string;
}

/** The UserError for an allocation failure `err` in the run described by `ctx`. */
export function outOfMemoryError(err: unknown, ctx: OomContext): UserError {
  const est = estimateMemory(ctx.model, ctx.plan, ctx.ep);
  // It did not fit, so the real budget is below the estimate: aim for 3/4 of it (or the known budget).
  const budget = Math.min(ctx.budgetBytes ?? Infinity, 0.75 * est.deviceTotal);
  const fit = suggestFit(est, budget);
  const where = ctx.ep === 'cpu' ? 'the computer\'s memory' : 'the GPU\'s memory';
  const kept = ctx.checkpointsDir ? ` Checkpoints saved so far are kept in ${ctx.checkpointsDir}.` : '';
  const detail = (err instanceof Error ? err.message : String(err)).split('\n')[0]!.slice(0, 200);
  const hint = fit.changes.length
    ? `Start again with: ${fit.changes.map((c) => c.words).join(', ')}. (Estimated need now about ${formatBytes(est.deviceTotal)}; after the change about ${formatBytes(fit.estimate.deviceTotal)}.)`
    : 'Choose a smaller model, or close other programs that use a lot of memory.';
  return new UserError('train.outOfMemory',
    `Training ran out of ${where} and was stopped.${kept} (Details: ${detail})`, hint);
}

/** Runs `fn`; an allocation failure becomes outOfMemoryError (context built only then). */
export async function withOomGuidance<T>(fn: () => Promise<T>, context: () => Promise<OomContext | null>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (!isOutOfMemory(err)) throw err;
    let ctx: OomContext | null = null;
    try {
      ctx = await context();
    } catch { /* the original error matters more than a failed look-up */ }
    if (!ctx) throw new UserError('train.outOfMemory', 'Training ran out of memory and was stopped.', 'Use QLoRA, a smaller batch or a shorter context, then start again.');
    throw outOfMemoryError(err, ctx);
  }
}

/** The context of a trainer run from its (raw) config: model config.json and the dataset's block size. */
export async function trainOomContext(cfg: {
  model: string; dataset: string; out: string; batchSize: number; ep: string;
  lora: { rank: number; targets: MemoryPlan['lora']['targets'] }; quantization?: 'none' | 'nf4';
}, ep: MemoryEp): Promise<OomContext> {
  const model = await readModelConfig(cfg.model);
  const manifest = JSON.parse(await readFile(path.join(cfg.dataset, 'manifest.json'), 'utf8')) as { blockSize: number };
  return {
    model, ep, checkpointsDir: path.join(cfg.out, 'checkpoints'),
    plan: planFromTrainConfig(cfg, manifest.blockSize),
  };
}
