/**
 * The services the contract calls, and `dispatch`: the one place a call is validated, routed, and its
 * answer (or error) put into an envelope. The Electron gatekeeper and the WebSocket bridge both call it.
 */
import { z } from 'zod';
import os from 'node:os';
import path from 'node:path';
import { channels, type ChannelName, type Envelope, type Response, type ApiErrorShape } from '../contract';
import { plainEngineError } from '../engine/memory/oom';
import { JobHost } from './jobs/host';
import type { SpawnJobProcess } from './jobs/protocol';
import { ProjectsService } from './projects';
import { SecretsService, type SecretBox } from './secrets';
import { SettingsService, type KeyValueStore } from './settings';
import { bundledResources, resourcesDir } from './resources';
import { builtinTemplates } from './templates';
import { OffloadPool } from './offload/pool';
import type { TaskName } from './offload/limits';
import { confine, PathGuard } from './paths';
import { clearWeightCache, weightCacheInfo } from './cache';
import { hubDownload, hubInfo, hubRecommended, hubSearch } from './hub';
import { listFolder, rememberFolder } from './picker';
import { ollamaBinary, registerOllama } from './ollama';
import type { PickKind } from '../contract/ux';

/** The OS's open dialog (Electron only; app/dialogs.ts): the chosen path, or null when cancelled. */
export type NativeDialog = (req: { pick: PickKind; title: string; defaultPath?: string | undefined }) => Promise<string | null>;
import { listGgufFiles, readEvalReport } from './chat';
import { expectedDevice } from './device';

export interface Services {
  runtime: 'electron' | 'bridge';
  version: string;
  settings: SettingsService;
  secrets: SecretsService;
  projects: ProjectsService;
  jobs: JobHost;
  /** The folders the user chose; every path a call names is checked against them (paths.ts). */
  paths: PathGuard;
  /** Worker threads for the calls that may run long (offload/). */
  offload: OffloadPool;
  /** The app's own models folder: Hub downloads land here (null: none, downloads refused). */
  modelsDir: string | null;
  /** Electron's native open dialog; absent in browser mode (the renderer shows the bridge's picker). */
  nativeDialog?: NativeDialog;
  /** The bundled resources folder (the picker offers it as a place), or null. */
  resources: string | null;
}

export function createServices(opts: {
  runtime: 'electron' | 'bridge';
  version: string;
  store: KeyValueStore;
  secretBox: SecretBox | null;
  spawnJob: SpawnJobProcess;
  /** The app's models folder (Hub downloads); readable as a model root from the start. */
  modelsDir?: string | null;
  nativeDialog?: NativeDialog;
}): Services {
  const settings = new SettingsService(opts.store);
  const resources = bundledResourcesDir();
  const paths = new PathGuard({ resources });
  const modelsDir = opts.modelsDir ? ownModelsDir(paths, opts.modelsDir) : null;
  return {
    runtime: opts.runtime,
    version: opts.version,
    settings,
    secrets: new SecretsService(settings, opts.secretBox),
    projects: new ProjectsService(settings, paths),
    jobs: new JobHost(opts.spawnJob),
    paths,
    offload: new OffloadPool(),
    modelsDir,
    resources,
    ...(opts.nativeDialog ? { nativeDialog: opts.nativeDialog } : {}),
  };
}

/** The models folder as a root of the app's own; one that holds system places is not used (Hub downloads then say so). */
function ownModelsDir(paths: PathGuard, dir: string): string | null {
  try {
    return paths.own(dir, 'model');
  } catch {
    return null;
  }
}

/** A new project's default location: LATHE_PROJECTS_DIR, else "Lathe projects" in the user's home folder. */
function defaultProjectsDir(): string {
  return process.env['LATHE_PROJECTS_DIR'] || path.join(os.homedir(), 'Lathe projects');
}

function bundledResourcesDir(): string | null {
  try {
    return resourcesDir();
  } catch {
    return null;
  }
}

type Handlers = {
  [C in ChannelName]: (req: z.output<(typeof channels)[C]['request']>, s: Services) => Promise<Response<C>> | Response<C>;
};

const handlers: Handlers = {
  'app.info': (_req, s) => ({ version: s.version, platform: process.platform, runtime: s.runtime, defaultProjectsDir: defaultProjectsDir() }),
  'projects.create': (req, s) => s.projects.create(req.parentDir, req.name),
  'projects.open': (req, s) => s.projects.open(req.path),
  'projects.recent': (_req, s) => s.projects.recent(),
  'projects.setModel': (req, s) => s.projects.setModel(req.path, req.modelPath),
  'settings.get': (_req, s) => ({ theme: s.settings.get().theme }),
  'settings.set': (req, s) => ({ theme: s.settings.update(req).theme }),
  'secrets.setHubToken': (req, s) => { s.secrets.setHubToken(req.token); return { stored: true }; },
  'secrets.hasHubToken': (_req, s) => ({ present: s.secrets.hasHubToken(), available: s.secrets.available() }),
  'secrets.clearHubToken': (_req, s) => ({ cleared: s.secrets.clearHubToken() }),
  'jobs.start': (req, s) => ({ jobId: s.jobs.start(req) }),
  'jobs.list': (_req, s) => s.jobs.list(),
  'jobs.get': (req, s) => s.jobs.get(req.jobId),
  'jobs.cancel': (req, s) => s.jobs.cancel(req.jobId),
  'jobs.pause': (req, s) => s.jobs.pause(req.jobId),
  'jobs.resume': (req, s) => s.jobs.resume(req.jobId),
  'cache.info': () => weightCacheInfo(),
  'cache.clear': () => clearWeightCache(),
  // The wizards (contract/wizards.ts).
  'app.resources': () => bundledResources(),
  // Work that grows with its input runs in a worker thread under a time limit (offload/).
  'models.inspect': (req, s) => offload(s, 'models.inspect', req),
  'lora.plan': (req, s) => offload(s, 'lora.plan', req),
  'datasets.list': (req, s) => offload(s, 'datasets.list', req),
  'tokenizers.list': (req, s) => offload(s, 'tokenizers.list', req),
  'runs.list': (req, s) => offload(s, 'runs.list', req),
  'runs.read': (req, s) => offload(s, 'runs.read', req),
  'templates.builtins': () => builtinTemplates(),
  'templates.load': (req, s) => offload(s, 'templates.load', req),
  'templates.preview': (req, s) => offload(s, 'templates.preview', req),
  // Models from the Hub (contract/hub.ts, services/hub.ts).
  'hub.search': (req, s) => hubSearch(req, s),
  'hub.recommended': (req, s) => hubRecommended(req, s),
  'hub.info': (req, s) => hubInfo(req, s),
  'hub.download': (req, s) => hubDownload(req, s),
  // The picker and Ollama (contract/ux.ts).
  'files.list': (req, s) => listFolder(req, s.paths, s.settings.get().recentFolders, s.resources),
  'files.remember': (req, s) => ({ recent: rememberFolder(s.settings, s.paths, req.path) }),
  'files.native': async (req, s) => (s.nativeDialog ? { available: true, path: await s.nativeDialog(req) } : { available: false, path: null }),
  'ollama.find': () => ({ binary: ollamaBinary() }),
  'ollama.register': (req) => registerOllama(req.dir, req.name),
  // Trying the model (contract/chat.ts): small reads; the chat and the report themselves are jobs.
  'runs.evalReport': (req) => readEvalReport(req.runDir),
  'exports.ggufFiles': (req) => listGgufFiles(req.project),
  'devices.expected': (req) => expectedDevice(req.ep),
};

function offload<C extends TaskName & ChannelName>(s: Services, channel: C, req: z.output<(typeof channels)[C]['request']>): Promise<Response<C>> {
  return s.offload.run(channel, req) as Promise<Response<C>>;
}

function describeIssues(error: z.ZodError): string {
  return error.issues
    .slice(0, 5)
    .map((i) => `${i.path.length ? i.path.join('.') : '(payload)'}: ${i.message}`.slice(0, 300))
    .join('; ');
}

export function toApiError(err: unknown): ApiErrorShape {
  const u = plainEngineError(err, 'Lathe');
  return { code: u.code, message: u.message, ...(u.hint ? { hint: u.hint } : {}) };
}

/** A channel name as received, short and flat enough to quote in an error (it may be anything). */
function quoteChannel(channel: unknown): string {
  if (typeof channel === 'string') return JSON.stringify(channel.length > 80 ? `${channel.slice(0, 80)}…` : channel);
  return channel === null ? 'null' : Array.isArray(channel) ? 'an array' : `a ${typeof channel}`;
}

/** Validate, confine and route one call. Never throws: every outcome is an envelope. */
export async function dispatch(services: Services, channel: unknown, payload: unknown): Promise<Envelope<unknown>> {
  try {
    return await route(services, channel, payload);
  } catch (err) {
    return { ok: false, error: toApiError(err) };
  }
}

async function route(services: Services, channel: unknown, payload: unknown): Promise<Envelope<unknown>> {
  if (typeof channel !== 'string' || !Object.hasOwn(channels, channel)) {
    return { ok: false, error: { code: 'ipc.unknownChannel', message: `Unknown channel ${quoteChannel(channel)}.` } };
  }
  const name = channel as ChannelName;
  const spec = channels[name];
  const parsed = spec.request.safeParse(payload ?? {});
  if (!parsed.success) {
    return {
      ok: false,
      error: {
        code: 'ipc.badPayload',
        message: `Rejected a malformed call to "${name}": ${describeIssues(parsed.error)}.`,
        hint: 'This is a bug in the caller: the payload does not match the contract in src-main/contract.',
      },
    };
  }
  try {
    confine(name, parsed.data as never, services.paths);
    const handler = handlers[name] as (req: unknown, s: Services) => unknown;
    const value = await handler(parsed.data, services);
    return { ok: true, value: spec.response.parse(value) };
  } catch (err) {
    return { ok: false, error: toApiError(err) };
  }
}
