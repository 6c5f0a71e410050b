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
import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { freemem } from 'node:os';
import path from 'node:path';
import { UserError } from '../../util/progress';
import type { ModelConfig } from '../models/config';
import { readModelConfig } from '../models/validate';
import { estimateFromGpuPlan, estimateMemory, formatBytes, planFromTrainConfig, type MemoryEp, type MemoryPlan } from './estimate';
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

/** JavaScript's refusal of one buffer too large for it (e.g. a >4 GB typed array): a memory problem in plain words. */
const TOO_BIG_BUFFER = /Invalid typed array length|Invalid array buffer length|Invalid array length|Array buffer allocation failed|Invalid string length/i;
/** Text onnxruntime puts in the errors it throws (and our session wrapper's prefix). */
const ORT_ERROR = /onnxruntime|\[ONNXRuntimeError\]|Non-zero status code|Got invalid dimensions|Failed to load model|ORT_[A-Z_]+|Could not create an onnxruntime session/;

/**
 * Any error that reaches a user, in plain words: a UserError as it is; an allocation failure or an
 * over-sized buffer as running out of memory, with what to change; an onnxruntime failure as the compute
 * engine's; anything else as an internal error of Lathe (a bug to report, not something to retry).
 * Never the bare JavaScript message with "try again".
 */
export function plainEngineError(err: unknown, what = 'The job'): UserError {
  if (err instanceof UserError) return err;
  const e = err instanceof Error ? err : new Error(String(err));
  const first = e.message.split('\n')[0]!.slice(0, 300);
  if (isOutOfMemory(e) || TOO_BIG_BUFFER.test(e.message)) {
    return new UserError('engine.outOfMemory',
      `${what} ran out of memory: it needed a block of memory larger than this computer could give it (${first}).`,
      'For training: use QLoRA (4-bit base weights), shorter blocks (a smaller block size when preparing the data), a batch of 1, or activation recomputation. Otherwise close other programs or choose a smaller model.');
  }
  if (ORT_ERROR.test(e.message)) {
    return new UserError('engine.runtime', `The compute engine (onnxruntime) failed: ${first}`,
      'Retrying the same run will most likely fail the same way. Try the CPU device (ep: cpu) if this happened on a GPU, and report it with the log.');
  }
  return new UserError('internal',
    `${what} stopped on an internal error of Lathe (${e.name}: ${first}). This is a bug, not something wrong with your files or settings.`,
    'Retrying will most likely fail the same way: report it with the log below.');
}

/**
 * Memory this computer can give a new job now (Linux: MemAvailable; elsewhere: free memory), capped by
 * LATHE_MEMORY_LIMIT (bytes, or with a decimal K/M/G suffix: 20M = 20,000,000 bytes) for machines shared with other work.
 */
export function availableMemory(): number {
  let avail = freemem();
  try {
    const m = /^MemAvailable:\s+(\d+) kB/m.exec(readFileSync('/proc/meminfo', 'utf8'));
    if (m) avail = Number(m[1]) * 1024;
  } catch { /* not Linux */ }
  const cap = /^(\d+(?:\.\d+)?)\s*([KMG]?)B?$/i.exec(process.env['LATHE_MEMORY_LIMIT']?.trim() ?? '');
  if (cap) avail = Math.min(avail, Number(cap[1]) * 1000 ** ' KMG'.indexOf((cap[2] || ' ').toUpperCase()));
  return avail;
}

/**
 * Refuses a run on Lathe's GPU backend whose buffer plan (planGraph's bytes: exact, known before any buffer
 * exists) cannot fit: on a software adapter (lavapipe: device memory is this computer's memory) device and
 * host together against what is available; on a real GPU, whose memory WebGPU does not report, the host
 * side only (the device's own out-of-memory error is turned into guidance by outOfMemoryError).
 */
export function refuseIfGpuPlanTooBig(model: ModelConfig, bytes: Readonly<Record<string, number>>, opts: { software: boolean; pagedLoraParams?: number }, available = availableMemory()): void {
  const est = estimateFromGpuPlan(model, bytes, opts.pagedLoraParams ? { loraParams: opts.pagedLoraParams } : null);
  const need = opts.software ? est.device + est.host : est.host;
  if (need <= available) return;
  throw new UserError('train.tooBig',
    `This run needs about ${formatBytes(need)} of memory (GPU buffers ${formatBytes(est.planned)}${opts.software ? ', held in this computer\'s memory by the software GPU' : ''}), and this computer has ${formatBytes(available)} available, so it was not started.`,
    'Change: recompute activations, use QLoRA (4-bit base weights), shorter blocks (a smaller block size when preparing the data) or a batch of 1. Closing other programs also frees memory.');
}

/**
 * Refuses, before any work, a CPU-EP run whose estimate exceeds the memory available, naming the estimate,
 * what is available and the settings that would fit (QLoRA, recomputation, shorter blocks, smaller batch).
 */
export function refuseIfTooBig(model: ModelConfig, plan: MemoryPlan, ep: MemoryEp, available = availableMemory()): void {
  if (ep !== 'cpu') return; // GPU memory is not known before the device opens
  const est = estimateMemory(model, plan, ep);
  if (est.deviceTotal <= available) return;
  const fit = suggestFit(est, available);
  const fix = fit.fits && fit.changes.length
    ? `Change: ${fit.changes.map((c) => c.words).join(', ')} (about ${formatBytes(fit.estimate.deviceTotal)}).`
    : 'No setting makes it fit: choose a smaller model, or train on a machine with more memory.';
  throw new UserError('train.tooBig',
    `This run needs about ${formatBytes(est.deviceTotal)} of memory (weights ${formatBytes(est.device.weights)}, activations ${formatBytes(est.device.activations)}), and this computer has ${formatBytes(available)} available, so it was not started.`,
    `${fix} Closing other programs also frees memory.`);
}
