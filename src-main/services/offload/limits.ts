/** Time limits of the offloaded calls, and how a stopped one is explained. */
export const TASK_LIMITS = {
  'templates.preview': { ms: 5_000, what: 'Previewing the template', hint: 'A loop in the template runs too long (for example a large range()); make it shorter.' },
  'templates.load': { ms: 10_000, what: 'Reading the chat template', hint: 'Check the model folder’s tokenizer_config.json; it may be damaged or huge.' },
  'lora.plan': { ms: 10_000, what: 'Planning the LoRA run', hint: 'Check the model folder’s config.json: its sizes may be damaged.' },
  'models.inspect': { ms: 60_000, what: 'Checking the model folder', hint: 'Check that the folder holds one model (config.json, *.safetensors, tokenizer files) on a local disk.' },
  'runs.read': { ms: 30_000, what: 'Reading the training run', hint: 'Its metrics.jsonl may be very large or on a slow disk.' },
  'runs.list': { ms: 30_000, what: 'Listing the training runs', hint: 'Check that the project is on a local disk.' },
  'datasets.list': { ms: 30_000, what: 'Listing the prepared datasets', hint: 'Check that the project is on a local disk.' },
  'tokenizers.list': { ms: 30_000, what: 'Listing the extended tokenizers', hint: 'Check that the project is on a local disk.' },
} as const;

export type TaskName = keyof typeof TASK_LIMITS;
