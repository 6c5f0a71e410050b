/**
 * Contract entries for the app's second pass (issue 22 items 3-5, issue 21's and 19's app buttons): the file and
 * folder picker (browser mode lists folders through the bridge; Electron opens its native dialog), recent
 * folders, the time-estimate calibration job, the hand-off and adapter-import jobs, and registering a GGUF
 * export with Ollama. Kept apart from index.ts / wizards.ts so other helpers' additions merge cleanly.
 */
import { z } from 'zod';
import { TrainConfigSchema } from '../engine/train/config';

const path = z.string().min(1).max(4096).refine((p) => !p.includes('\0'), 'path contains a NUL byte');

function channel<Req extends z.ZodType, Res extends z.ZodType>(request: Req, response: Res) {
  return { request, response };
}

export const PickKind = z.enum(['folder', 'file']);
export type PickKind = z.infer<typeof PickKind>;

export const FileEntry = z.object({
  name: z.string(),
  path: z.string(),
  kind: z.enum(['folder', 'file']),
  /** Bytes (files only). */
  bytes: z.number().nullable(),
});
export type FileEntry = z.infer<typeof FileEntry>;

export const FolderListing = z.object({
  /** The folder listed (real path), or null for the starting places. */
  dir: z.string().nullable(),
  /** Its parent, when that can be listed too. */
  parent: z.string().nullable(),
  /** Whether `dir` itself may be chosen (folder pickers); false for /, /home, the home folder. */
  choosable: z.boolean(),
  entries: z.array(FileEntry),
  /** Entries left out (hidden files, system or secret places, devices) — counted, not named. */
  hidden: z.number(),
  /** More entries than the listing shows. */
  truncated: z.boolean(),
  places: z.array(z.object({ label: z.string(), path: z.string() })),
  recent: z.array(z.string()),
});
export type FolderListing = z.infer<typeof FolderListing>;

/**
 * Hand a run to another trainer (src-main/handoff, `lathe handoff`): a trained run folder, or the training
 * configuration the Configure page would start (not trained here at all).
 */
export const HandoffJobParams = z.object({
  run: path.optional(),
  config: TrainConfigSchema.optional(),
  target: z.enum(['accelerate', 'axolotl', 'llamafactory']),
  gpus: z.number().int().min(1).max(1024),
  nodes: z.number().int().min(1).max(1024).default(1),
  strategy: z.enum(['ddp', 'fsdp', 'zero2', 'zero3']).default('ddp'),
  out: path,
  baseName: z.string().min(1).max(200).optional(),
}).strict().refine((p) => (p.run === undefined) !== (p.config === undefined), 'give either a run folder (run) or a training configuration (config)');

/** A PEFT LoRA adapter trained anywhere -> a Lathe run (`lathe import-adapter`). */
export const ImportAdapterJobParams = z.object({
  adapter: path,
  model: path,
  out: path,
  tokenizer: path.optional(),
}).strict();

export const uxJobs = [
  /** A few real training steps of the configured run in a scratch folder, timed; nothing is kept. */
  z.object({ kind: z.literal('calibrate'), params: TrainConfigSchema }).strict(),
  z.object({ kind: z.literal('handoff'), params: HandoffJobParams }).strict(),
  z.object({ kind: z.literal('import-adapter'), params: ImportAdapterJobParams }).strict(),
] as const;

/** What the calibration job answers (renderer/lib/eta.ts extrapolates it). */
export interface CalibrationResult {
  /** Seconds from the job process's start to the first step, less one step (code and model load, graph build). */
  setupSeconds: number;
  /** Seconds per optimizer step, measured on the steps after the first. */
  stepSeconds: number;
  /** Each measured step's seconds, in order. */
  steps: number[];
  /** The device the steps ran on (as the trainer reports it). */
  ep: string;
}

export const uxChannels = {
  /** Browser-mode picker: a folder's entries that can be chosen (services/picker.ts; confined by paths.ts). */
  'files.list': channel(z.object({ dir: path.nullable(), pick: PickKind, showHidden: z.boolean().default(false) }).strict(), FolderListing),
  /** Remember a chosen folder in the recent list (settings). */
  'files.remember': channel(z.object({ path }).strict(), z.object({ recent: z.array(z.string()) })),
  /** Electron: the native open dialog. available=false in browser mode (the renderer shows its own). */
  'files.native': channel(z.object({ pick: PickKind, title: z.string().max(200), defaultPath: path.optional() }).strict(),
    z.object({ available: z.boolean(), path: z.string().nullable() })),
  /** Whether an `ollama` binary is on the PATH (found by PATH lookup, never a shell). */
  'ollama.find': channel(z.object({}).strict(), z.object({ binary: z.string().nullable() })),
  /** Runs `ollama create NAME -f DIR/Modelfile` (the command the Export page shows). */
  'ollama.register': channel(z.object({ dir: path, name: z.string().min(1).max(200) }).strict(),
    z.object({ name: z.string(), command: z.string(), output: z.string() })),
} as const;
