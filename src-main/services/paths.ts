/**
 * Path confinement: the one place that decides which files a call from the window (Electron gatekeeper or
 * bridge) may make Lathe read or write. Services and jobs then touch only folders the user chose:
 *
 *   project   created, or opened (a folder with lathe-project.json)   read + write (datasets, runs, exports inside)
 *   export    an export job's destination                        read + write
 *   model     chosen by models.inspect / projects.setModel       read only (originals are never modified)
 *   corpus    the files/folders named in a prepare or tokenizer job   read only
 *   resources the app's bundled model and corpora                read only, always
 *   download  a folder chosen to keep Hub downloads in (hub.download) read + write
 *
 * Choosing refuses system locations (/etc, /proc, /dev, ...), the folders that hold secrets (~/.ssh,
 * ~/.config, ...), any folder that contains one of them (/, /home, the home folder itself), and things that
 * are neither files nor folders (devices, FIFOs). Paths are compared after resolving symbolic links, so a
 * link inside a project cannot lead out of it. `confine` (below) names, per channel and per job kind, which
 * fields are paths of which kind; `dispatch` calls it before any handler runs.
 *
 * The app's own models folder (Hub downloads) is recorded by the app itself (`own`), so it may lie in the
 * settings folder (~/.config/...) that choosing refuses.
 *
 * The CLI calls services and the job host directly: a path typed on the command line is the user's own
 * choice, so nothing here applies to it.
 */
import { realpathSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { z } from 'zod';
import type { ChannelName, Channels, JobKind, JobRequest } from '../contract';
import { UserError } from '../util/progress';

export type RootKind = 'project' | 'export' | 'model' | 'corpus' | 'resources' | 'download';
const WRITABLE: readonly RootKind[] = ['project', 'export', 'download'];
const ANY: readonly RootKind[] = ['project', 'export', 'model', 'corpus', 'resources', 'download'];

const KIND_WORDS: Record<RootKind, string> = {
  project: 'a project you created or opened',
  export: 'an export folder',
  model: 'a model folder you chose',
  corpus: 'a corpus you named',
  resources: 'the bundled resources',
  download: 'a folder you chose for downloaded models',
};

/** System locations nothing is read from or written to (POSIX, macOS, Windows). */
function systemLocations(): string[] {
  if (process.platform === 'win32') {
    const sys = process.env['SystemRoot'] ?? 'C:\\Windows';
    return [sys, process.env['ProgramFiles'] ?? 'C:\\Program Files', process.env['ProgramFiles(x86)'] ?? 'C:\\Program Files (x86)', process.env['ProgramData'] ?? 'C:\\ProgramData'];
  }
  const posix = ['/etc', '/proc', '/sys', '/dev', '/boot', '/run', '/usr', '/bin', '/sbin', '/lib', '/lib32', '/lib64', '/libx32',
    '/var/lib', '/var/log', '/var/run', '/var/spool', '/var/cache', '/var/mail', '/var/backups', '/var/db', '/snap'];
  if (process.platform === 'darwin') posix.push('/System', '/Library', '/private/etc', '/private/var/db', '/private/var/log', '/cores');
  return posix;
}

/** Folders in the home folder that hold keys, tokens and browser profiles. */
const HOME_SECRETS = ['.ssh', '.gnupg', '.aws', '.azure', '.kube', '.docker', '.netrc', '.password-store', '.pki', '.mozilla',
  '.config', '.local/share/keyrings', 'Library/Keychains', 'AppData'];

function inside(child: string, parent: string): boolean {
  const rel = path.relative(parent, child);
  return rel === '' || (!rel.startsWith('..') && !path.isAbsolute(rel));
}

/** Absolute path with symbolic links resolved as far as the path exists (the rest may be created later). */
export function resolveReal(p: string): string {
  let head = path.resolve(p);
  const tail: string[] = [];
  for (;;) {
    try {
      return path.join(realpathSync.native(head), ...tail.reverse());
    } catch {
      const parent = path.dirname(head);
      if (parent === head) return path.join(head, ...tail.reverse());
      tail.push(path.basename(head));
      head = parent;
    }
  }
}

export class PathGuard {
  private readonly roots = new Map<string, RootKind>();
  private readonly denied: string[];
  /** Folders the app itself keeps (its models folder): a path inside one is never refused as a secret place. */
  private readonly owned: string[] = [];
  /** The user's home folder (the picker starts there). */
  readonly home: string;

  constructor(opts: { resources?: string | null; home?: string } = {}) {
    const home = opts.home ?? os.homedir();
    this.home = home;
    this.denied = [...systemLocations(), ...HOME_SECRETS.map((s) => path.join(home, s))].map(resolveReal);
    if (opts.resources) this.roots.set(resolveReal(opts.resources), 'resources');
  }

  /** Record a file or folder the user chose; refuses places Lathe must never touch. Returns the real path. */
  choose(p: string, kind: RootKind, what: string): string {
    const real = this.vet(p, what);
    // A narrower choice never downgrades a project to a read-only root.
    const had = this.roots.get(real);
    if (!had || !WRITABLE.includes(had)) this.roots.set(real, kind);
    return real;
  }

  /** Record a folder the app itself keeps (not one the window named). Returns the real path. */
  own(p: string, kind: RootKind): string {
    const real = resolveReal(p);
    // It may lie inside a settings folder, but must not hold system places or secrets itself (LATHE_MODELS_DIR=/).
    const held = this.denied.find((d) => inside(d, real));
    if (held) throw new UserError('paths.notAllowed', `Lathe will not keep its models in ${p}: it contains ${held}.`, 'Set LATHE_MODELS_DIR to a folder of its own, such as ~/lathe-models.');
    this.owned.push(real);
    this.roots.set(real, kind);
    return real;
  }

  /** What `choose` refuses, without recording anything (a project is recorded once its manifest is read). */
  vet(p: string, what: string): string {
    const real = this.resolve(p, what);
    if (this.owned.some((o) => inside(real, o))) { this.notSpecial(real, p, what); return real; }
    for (const d of this.denied) {
      if (inside(real, d) || inside(d, real)) {
        const why = inside(real, d)
          ? `it is inside ${d}, which belongs to the system or holds your keys and settings`
          : `it contains ${d}, which belongs to the system or holds your keys and settings`;
        throw new UserError('paths.notAllowed', `Lathe will not use ${p} as ${what}: ${why}.`, 'Choose the folder that holds just your own files (for example a folder in your Documents).');
      }
    }
    this.notSpecial(real, p, what);
    return real;
  }

  /**
   * A folder the picker may list (services/picker.ts): anything but system locations and secret folders and
   * what lies inside them. Listing is not choosing: /, /home and the home folder can be walked through.
   */
  browse(p: string, what: string): string {
    const real = this.resolve(p, what);
    if (this.deniedInside(real)) {
      throw new UserError('paths.notAllowed', `Lathe will not show ${p}: it belongs to the system or holds your keys and settings.`, 'Go to a folder that holds your own files (for example your Documents).');
    }
    return real;
  }

  /** Whether a real path is a system or secret place or lies inside one. */
  deniedInside(real: string): boolean {
    return this.denied.some((d) => inside(real, d));
  }

  /** The real path, when it lies under a chosen root of one of `kinds`; otherwise a plain refusal. */
  check(p: string, kinds: readonly RootKind[], what: string): string {
    const real = this.resolve(p, what);
    for (const [root, kind] of this.roots) {
      if (kinds.includes(kind) && inside(real, root) && (this.owned.some((o) => inside(real, o)) || !this.denied.some((d) => inside(real, d)))) {
        this.notSpecial(real, p, what);
        return real;
      }
    }
    const allowed = [...new Set(kinds)].map((k) => KIND_WORDS[k]).join(', or ');
    throw new UserError('paths.notAllowed', `Lathe refused ${what} ${p}: it is not inside ${allowed}.`,
      'Open or create the project first (or choose the model folder on the Projects page), then try again.');
  }

  read(p: string, what: string): string {
    return this.check(p, ANY, what);
  }

  write(p: string, what: string): string {
    return this.check(p, WRITABLE, what);
  }

  /** Chosen roots, for tests and diagnostics. */
  list(): { path: string; kind: RootKind }[] {
    return [...this.roots].map(([p, kind]) => ({ path: p, kind }));
  }

  private resolve(p: string, what: string): string {
    if (!path.isAbsolute(p)) {
      throw new UserError('paths.relative', `${what[0]!.toUpperCase()}${what.slice(1)} "${p}" is not a full path.`, 'Use the full path, starting at / (or a drive letter on Windows).');
    }
    return resolveReal(p);
  }

  private notSpecial(real: string, p: string, what: string): void {
    let st;
    try {
      st = statSync(real);
    } catch {
      return; // not there yet: the service says so in its own words, or creates it
    }
    if (!st.isFile() && !st.isDirectory()) {
      throw new UserError('paths.notRegular', `${p} (${what}) is neither a file nor a folder (a device, socket or pipe).`, 'Choose an ordinary file or folder.');
    }
  }
}

// ---- which fields are paths, per channel and per job kind -----------------------------------------

type Req<C extends ChannelName> = z.output<Channels[C]['request']>;
type Rule<T> = (req: T, g: PathGuard) => void;
type JobParams<K extends JobKind> = Extract<JobRequest, { kind: K }>['params'];

const corpus = (g: PathGuard, list: readonly string[], what: string) => { for (const p of list) g.choose(p, 'corpus', what); };

const jobRules: { [K in JobKind]: Rule<JobParams<K>> } = {
  selftest: () => {},
  prepare: (p, g) => {
    corpus(g, p.inputs, 'a corpus file or folder');
    corpus(g, p.general, 'a general-text file or folder');
    g.read(p.tokenizerDir, 'the tokenizer folder');
    g.write(p.out, 'the dataset folder');
  },
  'tokenizer-train': (p, g) => {
    g.read(p.baseDir, 'the model folder');
    corpus(g, p.corpus, 'a corpus file or folder');
    g.write(p.outFile, 'the candidates file');
  },
  'tokenizer-extend': (p, g) => {
    g.read(p.baseDir, 'the model folder');
    g.read(p.candidatesFile, 'the candidates file');
    corpus(g, p.domain, 'a corpus file or folder');
    corpus(g, p.general, 'a general-text file or folder');
    g.write(p.outDir, 'the tokenizer folder');
  },
  train: (p, g) => {
    g.read(p.model, 'the model folder');
    g.read(p.dataset, 'the dataset folder');
    if (p.tokenizer) g.read(p.tokenizer, 'the tokenizer folder');
    g.write(p.out, 'the run folder');
  },
  chat: (p, g) => {
    if (p.model) g.read(p.model, 'the model folder');
    if (p.adapter) g.read(p.adapter, 'the training run');
    if (p.gguf) g.read(p.gguf, 'the GGUF file');
  },
  'eval-report': (p, g) => {
    g.write(p.run, 'the training run'); // the report is written into the run folder
    if (p.general) g.read(p.general, 'the general dataset');
    if (p.evalSet) g.read(p.evalSet, 'the evaluation set');
  },
  export: (p, g) => {
    g.read(p.model, 'the model folder');
    g.read(p.adapter, 'the training run');
    if (p.tokenizerDir) g.read(p.tokenizerDir, 'the tokenizer folder');
    g.choose(p.out, 'export', 'the export folder');
  },
  // Its endpoint and folder are the app's own (services/hub.ts), so the window starts it with hub.download.
  'hub-download': () => {
    throw new UserError('hub.useHubDownload', 'Downloads from the Hub are started by "hub.download", not as a plain job.', 'Use the "Get a model from the Hub" panel.');
  },
  calibrate: (p, g) => {
    g.read(p.model, 'the model folder');
    g.read(p.dataset, 'the dataset folder');
    if (p.tokenizer) g.read(p.tokenizer, 'the tokenizer folder');
    g.write(p.out, 'the run folder');
  },
  handoff: (p, g) => {
    if (p.run) g.check(p.run, ['project'], 'the training run');
    if (p.config) {
      g.read(p.config.model, 'the model folder');
      g.read(p.config.dataset, 'the dataset folder');
      if (p.config.tokenizer) g.read(p.config.tokenizer, 'the tokenizer folder');
    }
    g.choose(p.out, 'export', 'the hand-off folder');
  },
  'import-adapter': (p, g) => {
    g.choose(p.adapter, 'model', 'the adapter folder');
    g.read(p.model, 'the model folder');
    if (p.tokenizer) g.read(p.tokenizer, 'the tokenizer folder');
    g.write(p.out, 'the run folder');
  },
};

/** Every channel decides what its paths may be; a new channel does not compile until it has a rule here. */
const channelRules: { [C in ChannelName]: Rule<Req<C>> } = {
  'app.info': () => {},
  'app.resources': () => {},
  'projects.create': () => {}, // the service chooses the folder it creates (projects.ts), once it has a name
  'projects.open': (r, g) => { g.vet(r.path, 'the project folder'); }, // recorded by the service once it is a project
  'projects.recent': () => {},
  'projects.setModel': (r, g) => {
    g.check(r.path, ['project'], 'the project folder');
    if (r.modelPath !== null) g.choose(r.modelPath, 'model', 'the model folder');
  },
  'settings.get': () => {},
  'settings.set': () => {},
  'secrets.setHubToken': () => {},
  'secrets.hasHubToken': () => {},
  'secrets.clearHubToken': () => {},
  'jobs.start': (r, g) => { (jobRules[r.kind] as Rule<unknown>)(r.params, g); },
  'jobs.list': () => {},
  'jobs.get': () => {},
  'jobs.cancel': () => {},
  'jobs.pause': () => {},
  'jobs.resume': () => {},
  'models.inspect': (r, g) => { g.choose(r.path, 'model', 'the model folder'); },
  'lora.plan': (r, g) => {
    g.read(r.model, 'the model folder');
    if (r.dataset !== null) g.read(r.dataset, 'the dataset folder');
    if (r.tokenizer !== null) g.read(r.tokenizer, 'the tokenizer folder');
  },
  'datasets.list': (r, g) => { g.check(r.project, ['project'], 'the project folder'); },
  'tokenizers.list': (r, g) => { g.check(r.project, ['project'], 'the project folder'); },
  'runs.list': (r, g) => { g.check(r.project, ['project'], 'the project folder'); },
  'runs.read': (r, g) => { g.check(r.runDir, ['project'], 'the training run'); },
  'templates.builtins': () => {},
  'templates.load': (r, g) => { if (r.modelDir) g.read(r.modelDir, 'the model folder'); },
  'templates.preview': (r, g) => { if (r.modelDir) g.read(r.modelDir, 'the model folder'); },
  'cache.info': () => {}, // the weight cache lives in Lathe's own folder (engine/weights), not a user path
  'cache.clear': () => {},
  // The Hub's channels name no local paths but the download folder (default the app's models folder).
  'hub.search': () => {},
  'hub.recommended': () => {},
  'hub.info': () => {},
  'hub.download': (r, g) => { if (r.parentDir !== undefined) g.choose(r.parentDir, 'download', 'the folder to keep models in'); },
  // The picker and Ollama (contract/ux.ts).
  'files.list': (r, g) => { if (r.dir !== null) g.browse(r.dir, 'the folder'); },
  'files.remember': (r, g) => { g.vet(r.path, 'a recent folder'); },
  'files.native': () => {}, // the OS dialog lets the user choose; what comes back is checked by the call that uses it
  'ollama.find': () => {},
  'ollama.register': (r, g) => { g.check(r.dir, ['export', 'project'], 'the export folder'); },
  'runs.evalReport': (r, g) => { g.check(r.runDir, ['project'], 'the training run'); },
  'exports.ggufFiles': (r, g) => { g.check(r.project, ['project'], 'the project folder'); },
  'devices.expected': () => {}, // names no path
};

/** Throws a UserError when a validated request names a path outside what the user chose. */
export function confine<C extends ChannelName>(channel: C, req: Req<C>, guard: PathGuard): void {
  (channelRules[channel] as Rule<Req<C>>)(req, guard);
}
