/**
 * Contract entries for the wizards (model check, data preparation, tokenizer extension, LoRA planning,
 * training runs, chat-template preview). Kept apart from index.ts so that file stays the short list of
 * shell channels; index.ts spreads these in. Big service reports are typed with `z.custom` over type-only
 * imports: the renderer gets their TypeScript types without bundling any Node code.
 */
import { z } from 'zod';
import { CleanConfigSchema } from '../data/config';
import type { CandidateView, InspectTokenView, LintIssueView, PrepareReportView, TokenizerComparisonView } from './reports';

const path = z.string().min(1).max(4096).refine((p) => !p.includes('\0'), 'path contains a NUL byte');
const paths = z.array(path).max(1000);

function channel<Req extends z.ZodType, Res extends z.ZodType>(request: Req, response: Res) {
  return { request, response };
}

// ---- job parameters -------------------------------------------------------------------------------

/**
 * Import, clean, mix, tokenize and pack a corpus (data/prepare.ts prepareCorpus). `mode: 'sft'`:
 * conversations rendered through the model's chat template (tokenizerDir), loss on assistant tokens.
 */
export const PrepareParams = z.object({
  /** 'preference': prompt/chosen/rejected pairs (docs/preference.md), rendered like 'sft'. */
  mode: z.enum(['pretrain', 'sft', 'preference']).default('pretrain'),
  /** SFT: samples longer than blockSize are dropped (default) or truncated. */
  truncation: z.enum(['drop', 'truncate']).default('drop'),
  inputs: paths.min(1),
  general: paths.default([]),
  out: path,
  tokenizerDir: path,
  blockSize: z.number().int().min(8).max(1 << 20).default(1024),
  ratio: z.number().gt(0).max(1).default(0.7),
  valFraction: z.number().min(0).max(0.5).default(0.02),
  seed: z.number().int().min(0).default(1),
  clean: CleanConfigSchema.partial().default({}),
}).strict();

/** Learn candidate tokens for the domain corpus (tokenizer/service.ts trainDomainTokenizer). */
export const TokenizerTrainParams = z.object({
  baseDir: path,
  corpus: paths.min(1),
  maxCandidates: z.number().int().min(1).max(20_000).default(500),
  /** Where the candidates are written (read again by the extend job). */
  outFile: path,
}).strict();

/** Add the top N candidates to the tokenizer and measure tokens per word before/after. */
export const TokenizerExtendParams = z.object({
  baseDir: path,
  candidatesFile: path,
  topN: z.number().int().min(1).max(20_000),
  outDir: path,
  domain: paths.min(1),
  general: paths.default([]),
  maxChars: z.number().int().min(1000).max(50_000_000).default(2_000_000),
}).strict();

/** The job kinds these wizards add; index.ts puts them in the JobRequest union. */
export const wizardJobs = [
  z.object({ kind: z.literal('prepare'), params: PrepareParams }).strict(),
  z.object({ kind: z.literal('tokenizer-train'), params: TokenizerTrainParams }).strict(),
  z.object({ kind: z.literal('tokenizer-extend'), params: TokenizerExtendParams }).strict(),
] as const;

/** What each wizard job answers in JobInfo.result. */
export interface TokenizerTrainResult {
  file: string;
  corpus: { texts: number; words: number; uniqueWords: number; baseTokens: number };
  baseVocabSize: number;
  /** The best candidates (at most 500 of them, for the table). */
  candidates: CandidateView[];
  totalCandidates: number;
}
export interface TokenizerExtendResult {
  outDir: string;
  manifest: { baseVocabSize: number; newVocabSize: number; predictedSaving: number; added: number; intermediates: number };
  comparison: TokenizerComparisonView;
}
export type PrepareReport = PrepareReportView;
export interface JobResults {
  prepare: PrepareReport;
  'tokenizer-train': TokenizerTrainResult;
  'tokenizer-extend': TokenizerExtendResult;
}

// ---- channel shapes -------------------------------------------------------------------------------

export const ModelSummary = z.object({
  dir: z.string(),
  architecture: z.string(),
  family: z.string(),
  /** What sets the architecture apart from a plain Llama, in plain words (engine/models/describe.ts). */
  features: z.array(z.string()).optional(),
  parameters: z.number(),
  layers: z.number(),
  hiddenSize: z.number(),
  vocabSize: z.number(),
  maxPositions: z.number(),
  dtype: z.string().nullable(),
  weightBytes: z.number(),
  tokenizer: z.object({ found: z.boolean(), modelType: z.string().nullable(), vocabSize: z.number().nullable(), error: z.string().nullable() }),
  chatTemplate: z.object({ found: z.boolean(), source: z.string().nullable() }),
  problems: z.array(z.object({ code: z.string(), message: z.string(), hint: z.string() })),
  warnings: z.array(z.string()),
});
export type ModelSummary = z.infer<typeof ModelSummary>;

const Targets = z.union([z.enum(['attention', 'mlp', 'all-linear']), z.array(z.enum(['q', 'k', 'v', 'qkv', 'o', 'gate', 'up', 'down', 'gate_up'])).min(1)]);

export const LoraPlanRequest = z.object({
  model: path,
  dataset: path.nullable(),
  // The same bounds as the training config (engine/train/config.ts): a plan for a run that cannot start
  // would mislead, and unbounded numbers made planning loop for minutes.
  rank: z.number().int().min(1).max(1024),
  targets: Targets,
  batchSize: z.number().int().min(1).max(4096),
  gradAccum: z.number().int().min(1).max(1024),
  epochs: z.number().positive().max(100),
  maxSteps: z.number().int().min(1).max(100_000_000).nullable(),
  /** QLoRA: base linear layers stored as NF4. */
  quantization: z.enum(['none', 'nf4']).default('none'),
  /** The device the memory estimate is for (auto: the device it is expected to pick; gpu = Lathe's own GPU kernels). */
  ep: z.enum(['auto', 'cpu', 'webgpu', 'cuda', 'gpu']).default('auto'),
  /** An extended tokenizer folder: its new tokens' embedding rows are trained too. */
  tokenizer: path.nullable().default(null),
  /** Optimizer state in host memory. */
  pagedOptimizer: z.boolean().default(false),
  /** Activation recomputation (gradient checkpointing). */
  recompute: z.boolean().default(false),
  /** Memory the run may use on the device, GiB; null = this machine's RAM for the CPU, no check for GPUs. */
  budgetGB: z.number().positive().max(4096).nullable().default(null),
}).strict();

export const LoraPlan = z.object({
  trainableParams: z.number(),
  modelParams: z.number(),
  /** trainable / model, percent. */
  trainablePct: z.number(),
  modules: z.number(),
  blockSize: z.number().nullable(),
  trainBlocks: z.number().nullable(),
  stepsPerEpoch: z.number().nullable(),
  totalSteps: z.number().nullable(),
  tokensPerStep: z.number().nullable(),
  arithmetic: z.string().nullable(),
  /** Memory estimate (engine/memory/estimate.ts) for the device, MiB, and its parts. */
  memoryMB: z.number(),
  /** The device the run is expected to train on and why, in plain words (the device menu shows it). */
  device: z.object({ device: z.string(), reason: z.string() }),
  memory: z.object({ ep: z.string(), weights: z.number(), adapters: z.number(), optimizer: z.number(), activations: z.number(), workspace: z.number(), hostMB: z.number() }),
  /** Trainable embedding rows added by an extended tokenizer (0 without one). */
  newTokenRows: z.number(),
  /** Whether the run fits the memory budget, and the changes that make it fit (plain words). */
  fit: z.object({
    fits: z.boolean(), budgetMB: z.number(), message: z.string(), changes: z.array(z.string()),
    /** The same changes as settings (engine/memory/fit.ts), so the wizard can apply them in one click. */
    fixes: z.array(z.object({
      setting: z.enum(['quantization', 'pagedOptimizer', 'recompute', 'batchSize', 'seqLen', 'loraRank']),
      from: z.union([z.string(), z.number(), z.boolean()]),
      to: z.union([z.string(), z.number(), z.boolean()]),
    })),
    /** Whether the run fits after `fixes` (false: even the smallest settings do not fit; a smaller model is needed). */
    fixable: z.boolean(),
  }).nullable(),
  presets: z.array(z.object({
    id: z.string(), label: z.string(), rank: z.number(), alpha: z.number(), targets: z.string(), lr: z.number(),
    batchSize: z.number(), gradAccum: z.number(), epochs: z.number(), arithmetic: z.string().nullable(), trainableParams: z.number(),
  })),
});
export type LoraPlan = z.infer<typeof LoraPlan>;

export const TokenizerSummary = z.object({
  dir: z.string(), name: z.string(), added: z.number(), baseVocabSize: z.number(), newVocabSize: z.number(), hash: z.string(),
});
export type TokenizerSummary = z.infer<typeof TokenizerSummary>;

export const DatasetSummary = z.object({
  dir: z.string(), name: z.string(), blockSize: z.number(), vocabSize: z.number(), createdAt: z.string(), tokenizerHash: z.string(),
  splits: z.record(z.string(), z.object({ rows: z.number(), tokens: z.number(), docs: z.number() })),
  /** What the rows hold: text blocks, conversations, or preference pairs (two rows each; DPO/ORPO). */
  kind: z.enum(['pretrain', 'sft', 'preference']).optional(),
});
export type DatasetSummary = z.infer<typeof DatasetSummary>;

export const MetricRecord = z.record(z.string(), z.union([z.number(), z.string()]));
export const RunSummary = z.object({
  dir: z.string(), name: z.string(), startedAt: z.string().nullable(), lastStep: z.number(), totalSteps: z.number().nullable(),
  status: z.enum(['finished', 'stopped', 'incomplete', 'empty']), checkpoints: z.array(z.object({ dir: z.string(), step: z.number() })),
  model: z.string().nullable(), dataset: z.string().nullable(),
  /** Where the folder comes from: a Lathe run, a PEFT adapter, or transformers Trainer output (checkpoint-N). */
  source: z.enum(['lathe', 'peft', 'hf-trainer', 'hf-full-model']).optional(),
  /** What the folder is and what can be done with it, for folders that are not Lathe runs. */
  note: z.string().optional(),
});
export type RunSummary = z.infer<typeof RunSummary>;
export const RunDetail = RunSummary.extend({
  records: z.array(MetricRecord),
  config: z.record(z.string(), z.unknown()).nullable(),
  /** Text the model wrote for the run's sample prompts, by step (samples.jsonl). */
  samples: z.array(z.object({ step: z.number(), samples: z.array(z.object({ prompt: z.string(), text: z.string() })) })),
});
export type RunDetail = z.infer<typeof RunDetail>;

export const ChatTurn = z.object({ role: z.enum(['system', 'user', 'assistant']), content: z.string().max(100_000) }).strict();
export const TemplateSource = z.object({ source: z.string(), origin: z.string(), specialTokens: z.record(z.string(), z.string()) });
export type TemplateSource = z.infer<typeof TemplateSource>;

export const TemplatePreview = z.object({
  text: z.string().nullable(),
  tokens: z.array(z.custom<InspectTokenView>(() => true)),
  counts: z.object({ tokens: z.number(), trained: z.number() }).nullable(),
  maskMethod: z.string().nullable(),
  warnings: z.array(z.string()),
  lint: z.array(z.custom<LintIssueView>(() => true)),
  error: z.string().nullable(),
});
export type TemplatePreview = z.infer<typeof TemplatePreview>;

export const wizardChannels = {
  /** Where the bundled model and sample corpora are (so a first run needs no downloads). */
  'app.resources': channel(z.object({}).strict(), z.object({ tinyModel: z.string(), domainCorpus: z.string(), generalCorpus: z.string() })),
  'models.inspect': channel(z.object({ path }).strict(), ModelSummary),
  'lora.plan': channel(LoraPlanRequest, LoraPlan),
  'datasets.list': channel(z.object({ project: path }).strict(), z.array(DatasetSummary)),
  /** Extended tokenizers in the project (<project>/tokenizer/*). */
  'tokenizers.list': channel(z.object({ project: path }).strict(), z.array(TokenizerSummary)),
  'runs.list': channel(z.object({ project: path }).strict(), z.array(RunSummary)),
  'runs.read': channel(z.object({ runDir: path }).strict(), RunDetail),
  'templates.builtins': channel(z.object({}).strict(), z.array(z.object({ name: z.string(), description: z.string() }))),
  'templates.load': channel(z.object({ builtin: z.string().max(64).optional(), modelDir: path.optional() }).strict(), TemplateSource),
  'templates.preview': channel(z.object({
    source: z.string().max(200_000),
    specialTokens: z.record(z.string(), z.string()),
    modelDir: path.nullable(),
    messages: z.array(ChatTurn).min(1).max(50),
  }).strict(), TemplatePreview),
} as const;
