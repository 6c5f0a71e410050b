/** Plain-words checks of the LoRA wizard's values, one message per field (shown next to the field). */
export interface LoraForm {
  rank: number; alpha: number; dropout: number; qlora: boolean; paged: boolean; recompute: boolean; f16: boolean; bf16?: boolean; targets: 'attention' | 'mlp' | 'all-linear'; lr: number;
  schedule: 'cosine' | 'linear' | 'constant'; warmupSteps: number; useSteps: boolean; maxSteps: number; epochs: number;
  batchSize: number; gradAccum: number; maxGradNorm: number; evalEvery: number; checkpointEvery: number;
  ep: 'auto' | 'cpu' | 'webgpu' | 'cuda' | 'gpu';
}

const whole = (v: number, lo: number, hi: number) => Number.isInteger(v) && v >= lo && v <= hi;

export function validateLora(f: LoraForm): Partial<Record<keyof LoraForm, string>> {
  const e: Partial<Record<keyof LoraForm, string>> = {};
  if (!whole(f.rank, 1, 1024)) e.rank = 'Rank must be a whole number from 1 to 1024 (8–64 is usual).';
  if (!(f.dropout >= 0 && f.dropout <= 0.9)) e.dropout = 'Dropout must be from 0 (off) to 0.9; 0.05–0.1 is common.';
  if (!(f.alpha > 0)) e.alpha = 'Alpha must be above 0; twice the rank is a common choice.';
  if (!(f.lr > 0 && f.lr <= 1)) e.lr = 'The learning rate must be above 0 and at most 1 (LoRA usually uses 0.0001–0.0003).';
  else if (f.lr > 0.01) e.lr = `A learning rate of ${f.lr} is very high for LoRA and will likely diverge; try 0.0002.`;
  if (!whole(f.warmupSteps, 0, 1e7)) e.warmupSteps = 'Warmup must be a whole number of steps, 0 or more.';
  if (f.useSteps && !whole(f.maxSteps, 1, 1e8)) e.maxSteps = 'Steps must be a whole number, at least 1.';
  if (!f.useSteps && !(f.epochs > 0 && f.epochs <= 100)) e.epochs = 'Epochs must be above 0 and at most 100 (fractions like 0.5 are fine).';
  if (!whole(f.batchSize, 1, 4096)) e.batchSize = 'Batch size must be a whole number from 1 to 4096.';
  if (!whole(f.gradAccum, 1, 1024)) e.gradAccum = 'Accumulation must be a whole number from 1 to 1024.';
  if (!(f.maxGradNorm >= 0)) e.maxGradNorm = 'The gradient clip must be 0 (off) or more; 1 is usual.';
  if (!whole(f.evalEvery, 0, 1e7)) e.evalEvery = 'Validate every N steps: a whole number, 0 for only at the end.';
  if (!whole(f.checkpointEvery, 1, 1e7)) e.checkpointEvery = 'Save a checkpoint every N steps: a whole number, at least 1.';
  return e;
}
