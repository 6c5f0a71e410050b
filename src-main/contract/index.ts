/**
 * The one IPC contract: every channel the renderer may call, with runtime-validated payload and result
 * schemas, and the one allow-listed event stream. Main (gatekeeper), preload, the WebSocket bridge and the
 * renderer all derive from this module; nothing else names a channel.
 */
import { z } from 'zod';
import { TrainConfigSchema } from '../engine/train/config';
import { ExportParamsSchema } from '../export/options';
import { wizardChannels, wizardJobs } from './wizards';
import { hubChannels, hubJobs } from './hub';
import { uxChannels, uxJobs } from './ux';
import { chatChannels, chatJobs } from './chat';

// ---- shared shapes -------------------------------------------------------------------------------

export const ApiErrorShape = z.object({
  code: z.string(),
  message: z.string(),
  hint: z.string().optional(),
});
export type ApiErrorShape = z.infer<typeof ApiErrorShape>;

const absPath = z.string().min(1).max(4096).refine((p) => !p.includes('\0'), 'path contains a NUL byte');

export const ProjectSummary = z.object({
  path: z.string(),
  name: z.string(),
  createdAt: z.string(),
  modelPath: z.string().nullable(),
  formatVersion: z.number().int(),
});
export type ProjectSummary = z.infer<typeof ProjectSummary>;

export const JobState = z.enum(['queued', 'running', 'paused', 'done', 'failed', 'cancelled']);
export type JobState = z.infer<typeof JobState>;

/** Every job kind and its parameters. Adding a kind = one entry here + a handler in services/jobs/kinds. */
export const JobRequest = z.discriminatedUnion('kind', [
  z.object({
    kind: z.literal('selftest'),
    params: z.object({
      /** Number of progress ticks to emit. */
      steps: z.number().int().min(1).max(100_000),
      /** Delay between ticks, ms. */
      intervalMs: z.number().int().min(0).max(60_000),
      /** Crash the job process at this step (tests the crash path). */
      crashAtStep: z.number().int().min(1).optional(),
      /** Throw an ordinary error at this step (tests the failure path). */
      failAtStep: z.number().int().min(1).optional(),
    }).strict(),
  }).strict(),
  /** LoRA training of a model on a prepared dataset; resumes from the run folder's last checkpoint. */
  z.object({ kind: z.literal('train'), params: TrainConfigSchema }).strict(),
  /** A trained run -> merged Hugging Face model or PEFT adapter, verified after writing (src-main/export). */
  z.object({ kind: z.literal('export'), params: ExportParamsSchema }).strict(),
  /** Corpus preparation and tokenizer extension (src-main/contract/wizards.ts). */
  ...wizardJobs,
  /** A model from the Hugging Face Hub (contract/hub.ts). */
  ...hubJobs,
  ...uxJobs,
  /** Chat (streamed as `text` events) and the evaluation report (src-main/contract/chat.ts). */
  ...chatJobs,
]);
export type JobRequest = z.infer<typeof JobRequest>;
export type JobKind = JobRequest['kind'];

export const JobInfo = z.object({
  id: z.string(),
  kind: z.string(),
  state: JobState,
  createdAt: z.string(),
  progress: z.object({ fraction: z.number().optional(), stage: z.string().optional(), message: z.string().optional() }),
  error: ApiErrorShape.optional(),
  result: z.unknown().optional(),
});
export type JobInfo = z.infer<typeof JobInfo>;

export const JobEvent = z.discriminatedUnion('type', [
  z.object({ type: z.literal('state'), job: JobInfo }),
  z.object({
    type: z.literal('progress'),
    jobId: z.string(),
    fraction: z.number().optional(),
    stage: z.string().optional(),
    message: z.string().optional(),
  }),
  z.object({ type: z.literal('log'), jobId: z.string(), level: z.enum(['info', 'warn', 'error']), message: z.string() }),
  z.object({ type: z.literal('metric'), jobId: z.string(), metric: z.record(z.string(), z.number()) }),
  /** Generated text as it comes (chat): `stream` names the side ('base', 'tuned', 'gguf'), `text` is the new piece. */
  z.object({ type: z.literal('text'), jobId: z.string(), stream: z.string(), text: z.string() }),
]);
export type JobEvent = z.infer<typeof JobEvent>;

export const Theme = z.enum(['system', 'light', 'dark']);

// ---- channels -------------------------------------------------------------------------------------

const empty = z.object({}).strict();

function channel<Req extends z.ZodType, Res extends z.ZodType>(request: Req, response: Res) {
  return { request, response };
}

export const channels = {
  'app.info': channel(
    empty,
    z.object({
      version: z.string(), platform: z.string(), runtime: z.enum(['electron', 'bridge']),
      /** Where a new project goes unless the user picks another place (created with the project). */
      defaultProjectsDir: z.string(),
    }),
  ),
  'projects.create': channel(
    z.object({ parentDir: absPath, name: z.string().trim().min(1).max(120) }).strict(),
    ProjectSummary,
  ),
  'projects.open': channel(z.object({ path: absPath }).strict(), ProjectSummary),
  'projects.recent': channel(empty, z.array(ProjectSummary)),
  'projects.setModel': channel(z.object({ path: absPath, modelPath: absPath.nullable() }).strict(), ProjectSummary),
  'settings.get': channel(empty, z.object({ theme: Theme })),
  'settings.set': channel(z.object({ theme: Theme }).partial().strict(), z.object({ theme: Theme })),
  'secrets.setHubToken': channel(z.object({ token: z.string().min(8).max(512) }).strict(), z.object({ stored: z.boolean() })),
  'secrets.hasHubToken': channel(empty, z.object({ present: z.boolean(), available: z.boolean() })),
  'secrets.clearHubToken': channel(empty, z.object({ cleared: z.boolean() })),
  'jobs.start': channel(JobRequest, z.object({ jobId: z.string() })),
  'jobs.list': channel(empty, z.array(JobInfo)),
  'jobs.get': channel(z.object({ jobId: z.string().min(1).max(64) }).strict(), JobInfo),
  'jobs.cancel': channel(z.object({ jobId: z.string().min(1).max(64) }).strict(), JobInfo),
  'jobs.pause': channel(z.object({ jobId: z.string().min(1).max(64) }).strict(), JobInfo),
  'jobs.resume': channel(z.object({ jobId: z.string().min(1).max(64) }).strict(), JobInfo),
  /** The weight cache (converted bf16 and QLoRA weights, services/cache.ts): its size, and clearing it. */
  'cache.info': channel(empty, z.object({
    root: z.string(), bytes: z.number(),
    entries: z.array(z.object({ key: z.string(), model: z.string().nullable(), bytes: z.number(), files: z.number() })),
  })),
  'cache.clear': channel(empty, z.object({ root: z.string(), freed: z.number() })),
  ...wizardChannels,
  ...hubChannels,
  ...uxChannels,
  ...chatChannels,
} as const;

export type Channels = typeof channels;
export type ChannelName = keyof Channels;
export const channelNames = Object.keys(channels) as ChannelName[];

export type Request<C extends ChannelName> = z.input<Channels[C]['request']>;
export type Response<C extends ChannelName> = z.output<Channels[C]['response']>;

/** What every call answers: the value, or an error in plain words. */
export type Envelope<T> = { ok: true; value: T } | { ok: false; error: ApiErrorShape };

/** Events main may push to the renderer: the allow-list. */
export const events = {
  job: JobEvent,
} as const;
export type EventName = keyof typeof events;
export const eventNames = Object.keys(events) as EventName[];
export type EventPayload<E extends EventName> = z.output<(typeof events)[E]>;

/**
 * The raw transport both preload and the bridge client provide: one named function per channel, each
 * answering an envelope, plus an allow-listed event subscription (returns an unsubscribe function).
 */
export type RawApi = { [C in ChannelName]: (payload: unknown) => Promise<Envelope<unknown>> } & {
  on(event: EventName, listener: (payload: unknown) => void): () => void;
};

/** The typed API the renderer uses: one function per channel, derived from the contract. */
export type Api = { [C in ChannelName]: (payload: Request<C>) => Promise<Response<C>> } & {
  on<E extends EventName>(event: E, listener: (payload: EventPayload<E>) => void): () => void;
};

/** The global the preload exposes (`window.lathe`). */
export const GLOBAL_NAME = 'lathe';
/** IPC channel carrying invoke calls / events (the preload never exposes ipcRenderer itself). */
export const IPC_INVOKE = 'lathe:invoke';
export const IPC_EVENT = 'lathe:event';
