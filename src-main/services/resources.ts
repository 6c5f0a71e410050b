/** Where the app's bundled resources are: the source tree in development and tests, next to the bundle in a build. */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { UserError } from '../util/progress';

export function resourcesDir(): string {
  const here = path.dirname(fileURLToPath(import.meta.url));
  const tries = [path.join(here, '..', '..', 'resources'), path.join(here, '..', 'resources'), path.join(process.cwd(), 'resources')];
  const procRes = (process as { resourcesPath?: string }).resourcesPath;
  if (procRes) tries.push(path.join(procRes, 'resources'));
  for (const dir of tries) if (existsSync(path.join(dir, 'models', 'tiny-default', 'config.json'))) return dir;
  throw new UserError('app.resourcesMissing', 'The bundled resources (tiny model, sample corpus) were not found.', 'Reinstall Lathe; the resources folder is part of the app.');
}

export function bundledResources(): { tinyModel: string; domainCorpus: string; generalCorpus: string } {
  const dir = resourcesDir();
  return {
    tinyModel: path.join(dir, 'models', 'tiny-default'),
    domainCorpus: path.join(dir, 'corpus', 'sample'),
    generalCorpus: path.join(dir, 'corpus', 'general'),
  };
}
