/**
 * Contract entries for models from the Hugging Face Hub (src-main/hub, services/hub.ts): search, the
 * recommended starting models by memory, one model's files, and the download job. index.ts spreads these in.
 */
import { z } from 'zod';
import type { ModelSummary } from './wizards';
import { DevicePref } from './chat';

const REPO = z.string().min(1).max(200).regex(/^(?:[A-Za-z0-9][A-Za-z0-9_.-]*\/)?[A-Za-z0-9][A-Za-z0-9_.-]*$/, 'a Hub model id such as owner/name');
const REVISION = z.string().min(1).max(200).regex(/^[A-Za-z0-9][A-Za-z0-9_./-]*$/, 'a branch, tag or commit');
const path = z.string().min(1).max(4096).refine((p) => !p.includes('\0'), 'path contains a NUL byte');

function channel<Req extends z.ZodType, Res extends z.ZodType>(request: Req, response: Res) {
  return { request, response };
}

/** Where the user will train and how much memory it has (null: this computer's RAM). */
const Budget = {
  budgetGB: z.number().min(0.25).max(4096).nullable().default(null),
  /** The device whose memory counts (auto: the one training is expected to pick; gpu: Lathe's GPU kernels). */
  ep: DevicePref.default('cpu'),
};

export const HubFit = z.object({
  fits: z.boolean(),
  /** "fits in your 24.0 GB: yes, with QLoRA" */
  words: z.string(),
  method: z.enum(['lora', 'qlora', 'qlora-recompute']).nullable(),
  bytes: z.number(),
});
export type HubFit = z.infer<typeof HubFit>;

export const HubModelRow = z.object({
  repo: z.string(),
  label: z.string(),
  parameters: z.number().nullable(),
  /** Approximate download size (bf16 weights), when the parameter count is known. */
  downloadBytes: z.number().nullable(),
  gated: z.boolean(),
  downloads: z.number().nullable(),
  note: z.string(),
  fit: HubFit.nullable(),
});
export type HubModelRow = z.infer<typeof HubModelRow>;

/** Download a model into the models folder (src-main/hub/download.ts); started by `hub.download` only. */
export const HubDownloadParams = z.object({
  endpoint: z.string().url().max(2000),
  repo: REPO,
  revision: REVISION,
  modelsDir: path,
}).strict();

export const hubJobs = [
  z.object({ kind: z.literal('hub-download'), params: HubDownloadParams }).strict(),
] as const;

/** JobInfo.result of a finished hub-download job. */
export interface HubDownloadResult {
  dir: string;
  repo: string;
  commit: string;
  files: number;
  bytes: number;
  fetched: number;
  alreadyThere: boolean;
  /** The model check (services/models.ts inspectModel) of the downloaded folder, or why it failed. */
  model: ModelSummary | null;
  modelError: { code: string; message: string; hint?: string } | null;
}

export const hubChannels = {
  /** Text-generation models with safetensors weights whose name contains `query`, most downloaded first. */
  'hub.search': channel(z.object({ query: z.string().trim().min(1).max(200), limit: z.number().int().min(1).max(50).default(20), ...Budget }).strict(),
    z.object({ endpoint: z.string(), budgetBytes: z.number(), results: z.array(HubModelRow) })),
  /** A short list of starting models, each with whether (and how) it fits the memory given. */
  'hub.recommended': channel(z.object(Budget).strict(),
    z.object({ endpoint: z.string(), budgetBytes: z.number(), machineBytes: z.number(), modelsDir: z.string().nullable(), models: z.array(HubModelRow) })),
  /** The files Lathe would download for a model (sizes, how each is checked) and those it leaves. */
  'hub.info': channel(z.object({ repo: REPO, revision: REVISION.default('main') }).strict(),
    z.object({
      repo: z.string(), commit: z.string(), gated: z.boolean(), totalBytes: z.number(),
      files: z.array(z.object({ name: z.string(), size: z.number(), check: z.enum(['sha256', 'size']) })),
      skipped: z.array(z.string()),
    })),
  /** Start the download job; the Hub token (if saved) goes to the job process, never into its parameters. */
  'hub.download': channel(z.object({
    repo: REPO, revision: REVISION.default('main'),
    /** A folder the user chose to keep models in; default the app's models folder. */
    parentDir: path.optional(),
  }).strict(),
    z.object({ jobId: z.string(), modelsDir: z.string() })),
} as const;
