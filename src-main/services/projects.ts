/**
 * Projects on disk: one folder per fine-tuning project.
 *
 *   <project>/lathe-project.json   versioned manifest (format, version, name, model, createdAt)
 *   <project>/datasets/             prepared corpora and SFT sets (manifests + shards)
 *   <project>/runs/<run-id>/        training runs: config, metrics.jsonl, checkpoints/
 *   <project>/exports/              merged models, adapters
 *
 * The manifest is written atomically; a manifest from a newer Lathe is refused rather than rewritten.
 */
import { promises as fsp, existsSync, statSync } from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import type { ProjectSummary } from '../contract';
import { writeFileAtomic } from '../util/atomic';
import { UserError } from '../util/progress';
import type { SettingsService } from './settings';
import { PathGuard } from './paths';

export const MANIFEST_NAME = 'lathe-project.json';
export const PROJECT_FORMAT_VERSION = 1;
export const PROJECT_SUBDIRS = ['datasets', 'runs', 'exports'] as const;
const MAX_MANIFEST_BYTES = 1 << 20;

const ManifestV1 = z.object({
  format: z.literal('lathe-project'),
  version: z.literal(1),
  name: z.string(),
  createdAt: z.string(),
  modelPath: z.string().nullable(),
});
type ManifestV1 = z.infer<typeof ManifestV1>;

function summary(dir: string, m: ManifestV1): ProjectSummary {
  return { path: dir, name: m.name, createdAt: m.createdAt, modelPath: m.modelPath, formatVersion: m.version };
}

/** Folder names that work on Windows, macOS and Linux. */
function safeFolderName(name: string): string {
  // Control characters are invalid in Windows file names, so they are matched on purpose.
  // eslint-disable-next-line no-control-regex
  const cleaned = name.replace(/[<>:"/\\|?*\u0000-\u001f]/g, '-').replace(/[. ]+$/, '').trim();
  if (!cleaned) {
    throw new UserError('projects.badName', `"${name}" cannot be used as a folder name.`, 'Use letters, digits, spaces or dashes.');
  }
  return cleaned;
}

/**
 * mkdir -p one level at a time. Node's recursive mkdir loops forever under /proc (each level answers
 * ENOENT); here the first existing ancestor must be a folder and every failure ends the call.
 */
async function makeFolders(dir: string): Promise<void> {
  const missing: string[] = [];
  let at = dir;
  while (!existsSync(at)) {
    missing.push(at);
    const up = path.dirname(at);
    if (up === at) break;
    at = up;
  }
  if (existsSync(at) && !statSync(at).isDirectory()) throw new Error(`${at} is not a folder`);
  for (const d of missing.reverse()) await fsp.mkdir(d);
}

export class ProjectsService {
  constructor(private readonly settings: SettingsService, private readonly guard: PathGuard = new PathGuard()) {}

  async create(parentDir: string, name: string): Promise<ProjectSummary> {
    if (!path.isAbsolute(parentDir)) {
      throw new UserError('projects.relativePath', `The location "${parentDir}" is not a full path.`, 'Pick the folder with the folder picker.');
    }
    // Refuses system places (/proc, /etc, ...) at once, before anything is created.
    const dir = this.guard.choose(path.join(parentDir, safeFolderName(name)), 'project', 'the new project folder');
    if (existsSync(path.join(dir, MANIFEST_NAME))) {
      throw new UserError('projects.exists', `A Lathe project already exists in ${dir}.`, 'Open it instead, or choose another name.');
    }
    if (existsSync(dir) && (await fsp.readdir(dir)).length > 0) {
      throw new UserError('projects.notEmpty', `The folder ${dir} already exists and is not empty.`, 'Choose another name so nothing of yours is overwritten.');
    }
    try {
      await makeFolders(dir);
      for (const sub of PROJECT_SUBDIRS) await makeFolders(path.join(dir, sub));
    } catch (err) {
      throw new UserError('projects.cannotCreate', `Could not create the project folder ${dir}: ${(err as Error).message}`, 'Check that the location exists and that you may write to it.');
    }
    const manifest: ManifestV1 = { format: 'lathe-project', version: 1, name, createdAt: new Date().toISOString(), modelPath: null };
    await writeFileAtomic(path.join(dir, MANIFEST_NAME), JSON.stringify(manifest, null, 2) + '\n');
    this.remember(dir);
    return summary(dir, manifest);
  }

  async open(dir: string): Promise<ProjectSummary> {
    this.guard.vet(dir, 'the project folder');
    const manifest = await this.readManifest(dir);
    // Only a real project becomes a folder Lathe may write in.
    this.guard.choose(dir, 'project', 'the project folder');
    // Older projects may miss a folder added later; create what is missing, touch nothing else.
    for (const sub of PROJECT_SUBDIRS) await fsp.mkdir(path.join(dir, sub), { recursive: true });
    this.remember(dir);
    return summary(dir, manifest);
  }

  async setModel(dir: string, modelPath: string | null): Promise<ProjectSummary> {
    const manifest = await this.readManifest(dir);
    const next = { ...manifest, modelPath };
    await writeFileAtomic(path.join(dir, MANIFEST_NAME), JSON.stringify(next, null, 2) + '\n');
    return summary(dir, next);
  }

  /** Recent projects that still exist, newest first. */
  async recent(): Promise<ProjectSummary[]> {
    const out: ProjectSummary[] = [];
    for (const dir of this.settings.get().recentProjects) {
      try {
        out.push(summary(dir, await this.readManifest(dir)));
      } catch {
        // moved or deleted since: leave it out of the list
      }
    }
    return out;
  }

  async readManifest(dir: string): Promise<ManifestV1> {
    const file = path.join(dir, MANIFEST_NAME);
    let text: string;
    try {
      // A manifest is a few hundred bytes; anything big at that name is not one (and is not read into memory).
      const st = await fsp.stat(file);
      if (!st.isFile()) throw new Error('not a file');
      if (st.size > MAX_MANIFEST_BYTES) {
        throw new UserError('projects.corrupt', `The project file ${file} is ${st.size} bytes, far larger than a Lathe project file.`, 'Pick the folder that contains lathe-project.json, or create a new project.');
      }
      text = await fsp.readFile(file, 'utf8');
    } catch (err) {
      if (err instanceof UserError) throw err;
      throw new UserError('projects.notFound', `No Lathe project was found in ${dir}.`, 'Pick the folder that contains lathe-project.json, or create a new project.');
    }
    let raw: unknown;
    try {
      raw = JSON.parse(text);
    } catch {
      throw new UserError('projects.corrupt', `The project file ${file} is not valid JSON.`, 'Restore it from a backup, or create a new project and copy your datasets into it.');
    }
    const version = (raw as { version?: unknown } | null)?.version;
    if (typeof version === 'number' && version > PROJECT_FORMAT_VERSION) {
      throw new UserError('projects.tooNew', `This project was saved by a newer Lathe (format ${version}; this one reads up to ${PROJECT_FORMAT_VERSION}).`, 'Update Lathe to open it.');
    }
    const parsed = ManifestV1.safeParse(raw);
    if (!parsed.success) {
      throw new UserError('projects.corrupt', `The project file ${file} is damaged: ${parsed.error.issues[0]?.message ?? 'unknown problem'}.`, 'Restore it from a backup, or create a new project.');
    }
    return parsed.data;
  }

  private remember(dir: string): void {
    const list = [dir, ...this.settings.get().recentProjects.filter((d) => d !== dir)].slice(0, 10);
    this.settings.update({ recentProjects: list });
  }
}
