/**
 * One training config object: every field has a comment and a default; unknown keys are rejected; the
 * resolved config is stored in every checkpoint (nanoGPT style).
 */
import { z } from 'zod';
import { UserError } from '../../util/progress';

const Targets = z.union([z.enum(['attention', 'mlp', 'all-linear']), z.array(z.enum(['q', 'k', 'v', 'qkv', 'o', 'gate', 'up', 'down', 'gate_up'])).min(1)]);

export const TrainConfigSchema = z.object({
  /** Hugging Face model folder (config.json, safetensors, tokenizer files). */
  model: z.string().min(1),
  /** Prepared dataset folder (`lathe prepare`): manifest.json + shards; splits train, val-domain, val-general. */
  dataset: z.string().min(1),
  /** Run folder: config.json, metrics.jsonl, checkpoints/. */
  out: z.string().min(1),
  lora: z.object({
    /** Rank r: 8-16 is the usual range; higher learns more and costs more memory. */
    rank: z.number().int().min(1).max(1024).default(8),
    /** alpha: scale = alpha/r; 2·r is a common choice. */
    alpha: z.number().positive().default(16),
    /** Dropout on the LoRA branch's input (0 = off; 0.05-0.1 is common). Seeded by (seed, step): resumes draw the same masks. */
    dropout: z.number().min(0).max(0.9).default(0),
    /** rsLoRA scaling alpha/√r (steadier at high ranks). */
    rslora: z.boolean().default(false),
    /** Which linear layers get adapters. */
    targets: Targets.default('all-linear'),
  }).strict().default({ rank: 8, alpha: 16, dropout: 0, rslora: false, targets: 'all-linear' }),
  optim: z.object({
    /** Peak learning rate. 2e-4 is the usual LoRA value. */
    lr: z.number().positive().max(1).default(2e-4),
    beta1: z.number().min(0).max(0.9999).default(0.9),
    beta2: z.number().min(0).max(0.99999).default(0.999),
    eps: z.number().positive().default(1e-8),
    /** Decoupled weight decay on LoRA weights. */
    weightDecay: z.number().min(0).default(0),
    /** Global gradient-norm clip; 0 turns it off. */
    maxGradNorm: z.number().min(0).default(1),
  }).strict().default({ lr: 2e-4, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0, maxGradNorm: 1 }),
  schedule: z.object({
    kind: z.enum(['cosine', 'linear', 'constant']).default('cosine'),
    /** Steps of linear warmup from 0. */
    warmupSteps: z.number().int().min(0).default(10),
    /** Final LR as a fraction of the peak. */
    minLrRatio: z.number().min(0).max(1).default(0.1),
  }).strict().default({ kind: 'cosine', warmupSteps: 10, minLrRatio: 0.1 }),
  /** Blocks per micro-batch. */
  batchSize: z.number().int().min(1).max(4096).default(4),
  /** Micro-batches per optimizer step (effective batch = batchSize × gradAccum). */
  gradAccum: z.number().int().min(1).max(1024).default(1),
  /** Optimizer steps to run (if set, overrides epochs). */
  maxSteps: z.number().int().min(1).optional(),
  /** Passes over the training split (used when maxSteps is not set). */
  epochs: z.number().positive().max(100).default(1),
  /** Validate every N optimizer steps (0 = only at the end). */
  evalEvery: z.number().int().min(0).default(50),
  /** At most this many validation blocks per held-out set. */
  evalBlocks: z.number().int().min(1).default(64),
  /** Save a checkpoint every N optimizer steps (and at the end, and on stop). */
  checkpointEvery: z.number().int().min(1).default(100),
  /** Checkpoints kept besides the best by validation loss. */
  keepLast: z.number().int().min(1).default(3),
  /** Seeds LoRA init and the data order. */
  seed: z.number().int().min(0).default(1234),
  /**
   * Base-weight storage: 'nf4' is QLoRA (linear layers as 4-bit NormalFloat with double-quantized
   * scales, ~4.13 bits/parameter, dequantized in the graph; quant/). 'none' keeps them f32.
   */
  quantization: z.enum(['none', 'nf4']).default('none'),
  /**
   * Compute device: auto picks Lathe's GPU backend on a hardware GPU (when the run needs nothing it lacks),
   * else CUDA -> WebGPU -> CPU; 'gpu' is Lathe's own WebGPU kernels on Dawn (engine/backends/webgpu).
   */
  ep: z.enum(['auto', 'cpu', 'webgpu', 'cuda', 'gpu']).default('auto'),
  /** Extended tokenizer folder (`lathe tokenizer extend`): its new tokens' embedding rows are trained too. */
  tokenizer: z.string().min(1).optional(),
  /** How new tokens' rows start: the mean of the sub-tokens each replaces, or the mean of all rows. */
  newTokenInit: z.enum(['mean-of-subtokens', 'global-mean']).default('mean-of-subtokens'),
  /** Prompts answered with the current adapter during training (RUN/samples.jsonl); SFT runs use the chat template. */
  samplePrompts: z.array(z.string().min(1)).max(32).default([]),
  /** Generate for samplePrompts at the start and every N optimizer steps (0 = never). */
  sampleEvery: z.number().int().min(0).default(0),
  /** New tokens per sample generation (greedy). */
  sampleMaxTokens: z.number().int().min(1).max(1024).default(48),
  /**
   * Compute type of the frozen model on GPU EPs: float16 halves its memory and uses f16 math; LoRA, optimizer and loss
   * stay f32. bfloat16 (Lathe's GPU backend only): activations stored as bf16 (f32 math in the kernels, bf16 weights read
   * as they are), f16's memory with f32's range.
   */
  compute: z.enum(['float32', 'float16', 'bfloat16']).default('float32'),
  /** Recompute each block's activations in the backward pass instead of keeping them (much less memory, a little more compute). */
  recompute: z.boolean().default(false),
  /** Keep AdamW's moments in host memory and move them through the device each step (less GPU memory, slower steps). */
  pagedOptimizer: z.boolean().default(false),
  /**
   * What is learned: 'lm' = next-token loss (continued pretraining or SFT, by the dataset's kind); 'dpo' or
   * 'orpo' = preference tuning on a preference dataset (`lathe prepare --preference`; docs/preference.md).
   */
  method: z.enum(['lm', 'dpo', 'orpo']).default('lm'),
  /** Preference tuning settings (used by method dpo / orpo). */
  preference: z.object({
    /** DPO β: how far the tuned model may drift from the base; 0.1 is the usual value, lower allows more drift. */
    beta: z.number().positive().max(100).default(0.1),
    /** DPO loss: 'sigmoid' (the DPO paper) or 'ipo' (squared loss that does not push margins to infinity). */
    loss: z.enum(['sigmoid', 'ipo']).default('sigmoid'),
    /** DPO sigmoid: assumed share of pairs whose labels are flipped (conservative DPO); 0 = off, ≤ 0.5. */
    labelSmoothing: z.number().min(0).max(0.5).default(0),
    /** ORPO λ: weight of the odds-ratio term beside the SFT term on the chosen reply (0.1 in the ORPO paper). */
    orpoLambda: z.number().positive().max(100).default(0.1),
  }).strict().default({ beta: 0.1, loss: 'sigmoid', labelSmoothing: 0, orpoLambda: 0.1 }),
  /** Stop after this many consecutive steps with a non-finite loss. */
  maxBadSteps: z.number().int().min(1).default(3),
}).strict();

export type TrainConfigInput = z.input<typeof TrainConfigSchema>;
export type TrainConfig = z.output<typeof TrainConfigSchema>;

export function resolveTrainConfig(input: unknown): TrainConfig {
  const r = TrainConfigSchema.safeParse(input);
  if (!r.success) {
    const issues = r.error.issues.slice(0, 4).map((i) => `${i.path.join('.') || '(config)'}: ${i.message}`).join('; ');
    throw new UserError('train.config', `The training settings are not valid: ${issues}.`, 'Fix the named settings (unknown keys are not allowed) and start again.');
  }
  return r.data;
}

/** Presets with their arithmetic shown to the user. */
export const PRESETS = {
  quick: { label: 'Quick', lora: { rank: 8, alpha: 16, targets: 'attention' as const }, optim: { lr: 3e-4 }, batchSize: 4, gradAccum: 1, epochs: 1 },
  balanced: { label: 'Balanced', lora: { rank: 16, alpha: 32, targets: 'all-linear' as const }, optim: { lr: 2e-4 }, batchSize: 4, gradAccum: 4, epochs: 2 },
  thorough: { label: 'Thorough', lora: { rank: 64, alpha: 128, targets: 'all-linear' as const }, optim: { lr: 1e-4 }, batchSize: 4, gradAccum: 8, epochs: 3 },
};

/**
 * Preference presets (DPO/ORPO on LoRA): lower learning rates than SFT, since the base model is already
 * a good starting point and DPO's implicit reward moves quickly. batchSize counts pairs (2 rows each).
 */
export const PREFERENCE_PRESETS = {
  dpo: { label: 'DPO (β 0.1)', method: 'dpo' as const, preference: { beta: 0.1, loss: 'sigmoid' as const }, lora: { rank: 16, alpha: 32, targets: 'all-linear' as const }, optim: { lr: 5e-5 }, batchSize: 2, gradAccum: 8, epochs: 1 },
  'dpo-robust': { label: 'DPO, noisy labels (β 0.1, smoothing 0.1)', method: 'dpo' as const, preference: { beta: 0.1, loss: 'sigmoid' as const, labelSmoothing: 0.1 }, lora: { rank: 16, alpha: 32, targets: 'all-linear' as const }, optim: { lr: 5e-5 }, batchSize: 2, gradAccum: 8, epochs: 1 },
  orpo: { label: 'ORPO (λ 0.1, no reference)', method: 'orpo' as const, preference: { orpoLambda: 0.1 }, lora: { rank: 16, alpha: 32, targets: 'all-linear' as const }, optim: { lr: 8e-5 }, batchSize: 2, gradAccum: 8, epochs: 1 },
};

export function presetArithmetic(p: { batchSize: number; gradAccum: number }, blockSize: number): string {
  const tokens = p.batchSize * p.gradAccum * blockSize;
  return `${p.batchSize} blocks × ${p.gradAccum} accumulation × ${blockSize} tokens = ${tokens.toLocaleString('en-US')} tokens per step`;
}

/** One line for the log and the model card. */
export function describeMethod(cfg: Pick<TrainConfig, 'method' | 'preference'>): string {
  const p = cfg.preference;
  if (cfg.method === 'dpo') {
    return p.loss === 'ipo' ? `IPO (DPO with the squared loss), β ${p.beta}, reference = the base model (adapter off)`
      : `DPO (sigmoid loss), β ${p.beta}${p.labelSmoothing > 0 ? `, label smoothing ${p.labelSmoothing}` : ''}, reference = the base model (adapter off)`;
  }
  if (cfg.method === 'orpo') return `ORPO, λ ${p.orpoLambda} (odds-ratio term + SFT on the chosen reply; no reference model)`;
  return 'next-token loss';
}
