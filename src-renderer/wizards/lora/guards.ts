/**
 * Guard rails before "Start training" (issue 22): the run is blocked, with the reason and a one-click fix,
 * when the memory estimate exceeds the budget; warnings (not blocks) for a step that takes more data than the
 * whole dataset and for a run too short to learn. Pure, so it is unit-tested without the page.
 */
import type { LoraPlan } from '../../../src-main/contract/wizards';
import type { LoraForm } from './validate';

/** Fewer optimizer steps than this barely move a LoRA adapter. */
export const MIN_STEPS = 20;

type Fix = NonNullable<LoraPlan['fit']>['fixes'][number];

export interface GuardFix {
  /** The button's label, e.g. "Apply: use QLoRA, batch 2 (gradient accumulation 4)". */
  label: string;
  /** The form with the changes applied (a new object). */
  apply(f: LoraForm): LoraForm;
}

export interface Guards {
  /** Why Start is disabled (null: it may start). */
  block: string | null;
  /** A change to the form that makes the run fit, when the wizard can make it. */
  fix: GuardFix | null;
  /** Plain-words warnings shown above Start. */
  warnings: string[];
}

const fmt = (n: number): string => Math.round(n).toLocaleString('en-US');

/** One fix from engine/memory/fit.ts as a form change, or null for one the wizard cannot make (block length). */
function formChange(fix: Fix): { words: string; apply(f: LoraForm): void } | null {
  switch (fix.setting) {
    case 'quantization':
      return fix.to === 'nf4' ? { words: 'use QLoRA (4-bit base weights)', apply: (f) => { f.qlora = true; f.f16 = false; } } : null;
    case 'pagedOptimizer':
      return fix.to === true ? { words: 'paged optimizer', apply: (f) => { f.paged = true; } } : null;
    case 'recompute':
      return fix.to === true ? { words: 'recompute activations (less memory, slower steps)', apply: (f) => { f.recompute = true; } } : null;
    case 'batchSize': {
      const to = Number(fix.to);
      if (!(to >= 1)) return null;
      return {
        words: `batch ${to}`,
        // Keep the tokens per step: what the batch loses, gradient accumulation makes up (capped at the form's limit).
        apply: (f) => {
          const tokens = f.batchSize * f.gradAccum;
          f.batchSize = to;
          f.gradAccum = Math.min(1024, Math.max(1, Math.ceil(tokens / to)));
        },
      };
    }
    case 'loraRank': {
      const to = Number(fix.to);
      if (!(to >= 1)) return null;
      // Keep the scale alpha/rank.
      return { words: `rank ${to}`, apply: (f) => { f.alpha = (f.alpha * to) / f.rank; f.rank = to; } };
    }
    default:
      return null;
  }
}

export function guardRails(plan: Pick<LoraPlan, 'fit' | 'tokensPerStep' | 'trainBlocks' | 'blockSize' | 'totalSteps'>, f: LoraForm): Guards {
  let block: string | null = null;
  let fix: GuardFix | null = null;
  const fit = plan.fit;
  if (fit && !fit.fits) {
    block = `The run does not fit in memory. ${fit.message}`;
    const changes = fit.fixable ? fit.fixes.map(formChange) : [];
    if (changes.length && changes.every((c) => c !== null)) {
      const usable = changes as NonNullable<ReturnType<typeof formChange>>[];
      fix = {
        label: `Apply: ${usable.map((c) => c.words).join(', ')}`,
        apply: (form) => {
          const next = { ...form };
          for (const c of usable) c.apply(next);
          return next;
        },
      };
    } else if (fit.fixable) {
      block += ' Prepare the dataset again with a shorter block length (Data page) to make it fit.';
    }
  }

  const warnings: string[] = [];
  const datasetTokens = plan.trainBlocks !== null && plan.blockSize !== null ? plan.trainBlocks * plan.blockSize : null;
  if (plan.tokensPerStep !== null && datasetTokens !== null && plan.tokensPerStep > datasetTokens) {
    warnings.push(
      `One step takes ${fmt(plan.tokensPerStep)} tokens, more than the whole dataset (${fmt(datasetTokens)} tokens in ${fmt(plan.trainBlocks!)} blocks): ` +
      `every step would see the same text. Lower the batch size or gradient accumulation so that batch × accumulation is at most ${fmt(plan.trainBlocks!)}.`,
    );
  }
  if (plan.totalSteps !== null && plan.totalSteps < MIN_STEPS) {
    warnings.push(
      `Only ${fmt(plan.totalSteps)} training step${plan.totalSteps === 1 ? '' : 's'}: too few for the model to learn much (aim for at least ${MIN_STEPS}). ` +
      'Train more epochs, lower the batch size, or add data.',
    );
  }
  if (plan.totalSteps !== null && f.warmupSteps >= plan.totalSteps && plan.totalSteps > 0) {
    warnings.push(`Warmup (${fmt(f.warmupSteps)} steps) is as long as the whole run (${fmt(plan.totalSteps)} step${plan.totalSteps === 1 ? '' : 's'}): the learning rate never reaches its set value. Lower the warmup steps.`);
  }
  return { block, fix, warnings };
}
