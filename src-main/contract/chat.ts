/**
 * Contract entries for trying a model in the app: the chat job (a Lathe model folder with or without a
 * run's adapter, side by side base vs fine-tuned, or an exported GGUF file through llama.cpp; the reply
 * streams as `text` job events), the evaluation-report job, and the channels that read what they leave.
 * index.ts spreads these in.
 */
import { z } from 'zod';
import type { EvalReportView } from './reports';

const path = z.string().min(1).max(4096).refine((p) => !p.includes('\0'), 'path contains a NUL byte');

function channel<Req extends z.ZodType, Res extends z.ZodType>(request: Req, response: Res) {
  return { request, response };
}

/**
 * The device a chat or evaluation job runs on: 'auto' (Lathe's GPU backend where a hardware GPU adapter
 * exists, else the CPU), 'gpu' (Lathe's own GPU kernels on Dawn), or one of onnxruntime's EPs. Absent = 'auto'.
 */
export const DevicePref = z.enum(['auto', 'gpu', 'cpu', 'webgpu', 'cuda']);
export type DevicePref = z.infer<typeof DevicePref>;

/** The device a job runs on (or is expected to), with the reason in plain words (services/device.ts). */
export const DeviceChoiceView = z.object({ device: z.enum(['gpu', 'cpu', 'webgpu', 'cuda']), reason: z.string() });
export type DeviceChoiceView = z.infer<typeof DeviceChoiceView>;

/** What the pages and logs call each device. */
export const DEVICE_LABEL: Record<DeviceChoiceView['device'], string> = {
  gpu: 'GPU (Lathe)', cpu: 'CPU', webgpu: 'GPU (onnxruntime WebGPU)', cuda: 'NVIDIA GPU (CUDA)',
};

/** A chat / eval-report job's log line naming its device starts with this (the pages show it beside the menu). */
export const DEVICE_LOG_PREFIX = 'Device: ';

/** Sampling settings, in transformers' meaning (engine/generate/sampling.ts); absent = the model's defaults. */
export const ChatSampling = z.object({
  /** New tokens at most. */
  maxTokens: z.number().int().min(1).max(4096).default(128),
  /** Always the most likely next token (temperature and the rest are then ignored). */
  greedy: z.boolean().default(false),
  temperature: z.number().min(0).max(5).optional(),
  topK: z.number().int().min(0).max(100_000).optional(),
  topP: z.number().gt(0).max(1).optional(),
  repetitionPenalty: z.number().min(0.5).max(5).optional(),
  seed: z.number().int().min(0).max(2 ** 31 - 1).optional(),
}).strict();
export type ChatSampling = z.infer<typeof ChatSampling>;

export const ChatMessageShape = z.object({ role: z.enum(['system', 'user', 'assistant']), content: z.string().max(100_000) }).strict();

/**
 * One chat turn. Either `model` (a model folder, optionally with `adapter`: a run or checkpoint folder;
 * `compare` answers with the base model and the adapter, same seed) or `gguf` (an exported file, through
 * llama.cpp with the template stored in the file). The last message must be the user's.
 */
export const ChatParams = z.object({
  model: path.nullable().default(null),
  adapter: path.nullable().default(null),
  gguf: path.nullable().default(null),
  compare: z.boolean().default(false),
  /** A built-in template by name, for a model without its own. */
  template: z.string().min(1).max(64).nullable().default(null),
  messages: z.array(ChatMessageShape).min(1).max(200),
  sampling: ChatSampling.default({ maxTokens: 128, greedy: false }),
  /** Absent = 'auto'. A GGUF file runs in llama.cpp: 'cpu' keeps it off the GPU, anything else lets it choose. */
  ep: DevicePref.optional(),
}).strict();
export type ChatParams = z.infer<typeof ChatParams>;

/** What a chat job answers: one reply per side ('base', 'tuned' or 'gguf'). */
export interface ChatReplyView {
  side: 'base' | 'tuned' | 'gguf';
  text: string;
  tokens: number;
  /** Why it stopped: 'eos' / 'stop' (the model ended its turn), 'length' (the length limit), 'capacity', 'cancelled'. */
  finish: string;
  seconds: number;
  /** Generated tokens per second. */
  tokensPerSecond: number;
}
export interface ChatResultView {
  replies: ChatReplyView[];
  /** Where the model ran and why (absent for a GGUF file: llama.cpp chooses). */
  device?: DeviceChoiceView;
}

/** The evaluation report of a finished run (eval/report.ts), written into the run folder. */
export const EvalReportParams = z.object({
  run: path,
  /** Another prepared dataset whose held-out text counts as general text. */
  general: path.nullable().default(null),
  /** JSONL with {"prompt","reference"} or {"messages"}: BLEU / ROUGE-L against the references. */
  evalSet: path.nullable().default(null),
  prompts: z.array(z.string().min(1).max(2000)).max(32).optional(),
  maxTokens: z.number().int().min(1).max(1024).default(48),
  maxBlocks: z.number().int().min(1).max(4096).default(32),
  /** Absent = 'auto'. */
  ep: DevicePref.optional(),
}).strict();

export const chatJobs = [
  z.object({ kind: z.literal('chat'), params: ChatParams }).strict(),
  z.object({ kind: z.literal('eval-report'), params: EvalReportParams }).strict(),
] as const;

export const chatChannels = {
  /** The run's evaluation report (RUN/eval-report.json) with plain-words verdicts; null when none was made yet. */
  'runs.evalReport': channel(z.object({ runDir: path }).strict(), z.custom<EvalReportView | null>(() => true)),
  /** GGUF files exported in the project (<project>/exports, two levels deep), newest first. */
  /**
   * The device a chat or evaluation job with this choice is expected to run on, and why, for the pages'
   * device menus; cheap (no driver is opened: the job checks the adapter again when it starts).
   */
  'devices.expected': channel(z.object({ ep: DevicePref }).strict(), DeviceChoiceView),
  'exports.ggufFiles': channel(z.object({ project: path }).strict(), z.array(z.object({ file: z.string(), bytes: z.number(), modifiedAt: z.string() }))),
} as const;
