/**
 * What to change so a run fits a memory budget, in words the wizard can show as they are
 * ("use QLoRA (4-bit base weights)", "lower batch to 2", "shorter context 512").
 *
 * Changes are tried from the one that costs the least quality to the one that costs the most:
 * QLoRA, paged optimizer states (GPU EPs: on the CPU EP host and device memory are the same),
 * a smaller batch (the same tokens per step can come back through gradient accumulation), a shorter
 * context, a lower LoRA rank. First the single change that fits on its own; failing that, changes
 * are combined in that order. Recomputation is not offered: the engine does not implement it yet.
 */
import { estimateMemory, formatBytes, type MemoryEstimate, type MemoryPlan } from './estimate';

export interface FitChange {
  setting: 'quantization' | 'pagedOptimizer' | 'recompute' | 'batchSize' | 'seqLen' | 'loraRank';
  from: string | number | boolean;
  to: string | number | boolean;
  /** Plain words for the wizard. */
  words: string;
}

export interface FitSuggestion {
  /** True when the run fits as it is, or after `changes`. */
  fits: boolean;
  /** Empty when it already fits. */
  changes: FitChange[];
  /** The estimate after the changes. */
  estimate: MemoryEstimate;
  /** One sentence for the user. */
  message: string;
}

type Step = (p: Required<MemoryPlan>, est: MemoryEstimate) => { plan: Required<MemoryPlan>; change: FitChange } | null;

const halve = (n: number, min: number) => Math.max(min, 2 ** Math.floor(Math.log2(Math.max(1, n - 1))));

const STEPS: Step[] = [
  (p) => (p.quantization === 'nf4' ? null : { plan: { ...p, quantization: 'nf4' }, change: { setting: 'quantization', from: p.quantization, to: 'nf4', words: 'use QLoRA (4-bit base weights)' } }),
  (p, e) => (p.pagedOptimizer || e.ep === 'cpu' ? null : { plan: { ...p, pagedOptimizer: true }, change: { setting: 'pagedOptimizer', from: false, to: true, words: 'keep optimizer states in main memory (paged optimizer)' } }),
  (p) => (p.recompute ? null : { plan: { ...p, recompute: true }, change: { setting: 'recompute', from: false, to: true, words: 'recompute activations in the backward pass (recompute: about half the activation memory, a slower step)' } }),
  (p) => {
    if (p.batchSize <= 1) return null;
    const to = halve(p.batchSize, 1);
    // (estimated with the accumulation that keeps the tokens per step: its accumulator counts)
    return { plan: { ...p, batchSize: to, gradAccum: Math.ceil((p.gradAccum * p.batchSize) / to) }, change: { setting: 'batchSize', from: p.batchSize, to, words: `lower batch to ${to} (raise gradient accumulation to keep the tokens per step)` } };
  },
  (p) => {
    if (p.seqLen <= 128) return null;
    const to = halve(p.seqLen, 128);
    return { plan: { ...p, seqLen: to }, change: { setting: 'seqLen', from: p.seqLen, to, words: `shorter context ${to}` } };
  },
  (p) => {
    if (p.lora.rank <= 4) return null;
    const to = halve(p.lora.rank, 4);
    return { plan: { ...p, lora: { ...p.lora, rank: to } }, change: { setting: 'loraRank', from: p.lora.rank, to, words: `lower LoRA rank to ${to}` } };
  },
];

/** The change (or changes) that make `estimate` fit in `budgetBytes` of device memory. */
export function suggestFit(estimate: MemoryEstimate, budgetBytes: number): FitSuggestion {
  const fitsIn = (e: MemoryEstimate) => e.deviceTotal <= budgetBytes;
  const budget = formatBytes(budgetBytes);
  if (fitsIn(estimate)) {
    return { fits: true, changes: [], estimate, message: `Fits: about ${formatBytes(estimate.deviceTotal)} of ${budget}.` };
  }
  const redo = (plan: Required<MemoryPlan>) => estimateMemory(estimate.model, plan, estimate.ep);
  // one change alone, each step repeated (batch 8 -> 4 -> 2 -> 1) until it fits or stops changing
  for (const step of STEPS) {
    let plan = estimate.plan, e = estimate, first: FitChange | null = null, last: FitChange | null = null;
    for (let s = step(plan, e); s; s = step(plan, e)) {
      plan = s.plan;
      e = redo(plan);
      first ??= s.change;
      last = s.change;
      if (fitsIn(e)) {
        const change = { ...last, from: first.from };
        return { fits: true, changes: [change], estimate: e, message: `Needs about ${formatBytes(estimate.deviceTotal)}, more than ${budget}: ${change.words} (about ${formatBytes(e.deviceTotal)}).` };
      }
    }
  }
  // combined, in order of quality cost
  let plan = estimate.plan, e = estimate;
  const changes = new Map<FitChange['setting'], FitChange>();
  for (const step of STEPS) {
    for (let s = step(plan, e); s; s = step(plan, e)) {
      plan = s.plan;
      e = redo(plan);
      const prev = changes.get(s.change.setting);
      changes.set(s.change.setting, { ...s.change, from: prev ? prev.from : s.change.from });
      if (fitsIn(e)) {
        const list = [...changes.values()];
        return { fits: true, changes: list, estimate: e, message: `Needs about ${formatBytes(estimate.deviceTotal)}, more than ${budget}: ${list.map((c) => c.words).join(', ')} (about ${formatBytes(e.deviceTotal)}).` };
      }
    }
  }
  return {
    fits: false, changes: [...changes.values()], estimate: e,
    message: `Even with the smallest settings this model needs about ${formatBytes(e.deviceTotal)}, more than ${budget}: choose a smaller model.`,
  };
}
