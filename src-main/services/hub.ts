/**
 * Models from the Hugging Face Hub for the window: search and the recommended list with "fits your
 * memory" in words, one model's files, and the download job. The Hub's address comes from HF_ENDPOINT
 * or the hubEndpoint setting (never from the window); the token from the keychain (secrets.ts) and goes to
 * the job process only with its start message. Downloads land in the app's models folder, or in a folder
 * the user chose for them (recorded by paths.ts as a 'download' root).
 */
import os from 'node:os';
import type { z } from 'zod';
import type { hubChannels, HubModelRow } from '../contract/hub';
import { HubClient } from '../hub/client';
import { pickFiles } from '../hub/files';
import { hubEndpoint } from '../hub/http';
import { fitOfParams, recommendedModels } from '../hub/recommend';
import type { MemoryEp } from '../engine/memory/estimate';
import type { DevicePref } from '../contract/chat';
import { expectedDevice } from './device';
import { UserError } from '../util/progress';
import type { Services } from '.';

type Req<C extends keyof typeof hubChannels> = z.output<(typeof hubChannels)[C]['request']>;
type Res<C extends keyof typeof hubChannels> = z.output<(typeof hubChannels)[C]['response']>;

function budget(req: { budgetGB: number | null }): number {
  return req.budgetGB !== null ? req.budgetGB * 1e9 : os.totalmem(); // decimal GB, as the page writes sizes
}

/** The memory the fit is for: Lathe's GPU backend is estimated as a GPU (like the WebGPU EP); auto as training is expected to pick. */
export function memoryEpOf(ep: DevicePref): MemoryEp {
  const d = ep === 'auto' ? expectedDevice('auto').device : ep;
  return d === 'gpu' ? 'webgpu' : d;
}

function endpoint(s: Services): string {
  return hubEndpoint(s.settings.get().hubEndpoint);
}

/** The token, when one is saved and the keychain can open it; never sent to the window. */
function token(s: Services): string | null {
  try {
    return s.secrets.getHubToken();
  } catch {
    return null; // a keychain that cannot decrypt (another user, a reset keyring): go on without
  }
}

export async function hubSearch(req: Req<'hub.search'>, s: Services): Promise<Res<'hub.search'>> {
  const ep = endpoint(s);
  const items = await new HubClient(ep, token(s)).search({ query: req.query, limit: req.limit });
  const b = budget(req);
  const results: HubModelRow[] = items.map((i) => {
    const params = i.safetensors?.total ?? null;
    return {
      repo: i.id, label: i.id.split('/').pop() ?? i.id, parameters: params, downloadBytes: params !== null ? params * 2 : null,
      gated: Boolean(i.gated), downloads: i.downloads ?? null, note: i.gated ? 'Needs a license acceptance and a token.' : '',
      fit: params !== null && params > 0 ? fitOfParams(params, b, memoryEpOf(req.ep)) : null,
    };
  });
  return { endpoint: ep, budgetBytes: b, results };
}

export function hubRecommended(req: Req<'hub.recommended'>, s: Services): Res<'hub.recommended'> {
  const b = budget(req);
  const models = recommendedModels(b, memoryEpOf(req.ep)).map((m) => ({ ...m, downloads: null }));
  return { endpoint: endpoint(s), budgetBytes: b, machineBytes: os.totalmem(), modelsDir: s.modelsDir, models };
}

export async function hubInfo(req: Req<'hub.info'>, s: Services): Promise<Res<'hub.info'>> {
  const info = await new HubClient(endpoint(s), token(s)).modelInfo(req.repo, req.revision);
  const { files, skipped } = pickFiles(info);
  return {
    repo: info.id, commit: info.sha, gated: Boolean(info.gated), totalBytes: files.reduce((a, f) => a + f.size, 0),
    files: files.map((f) => ({ name: f.name, size: f.size, check: f.sha256 ? 'sha256' as const : 'size' as const })), skipped,
  };
}

export function hubDownload(req: Req<'hub.download'>, s: Services): Res<'hub.download'> {
  // parentDir was vetted and recorded as a download folder by paths.ts before this runs.
  const modelsDir = req.parentDir ?? s.modelsDir;
  if (!modelsDir) {
    throw new UserError('hub.noModelsFolder', 'This Lathe has no models folder to download into.', 'Choose a folder under "Keep models in", or set LATHE_MODELS_DIR to a folder of its own and start Lathe again.');
  }
  const t = token(s);
  const jobId = s.jobs.start(
    { kind: 'hub-download', params: { endpoint: endpoint(s), repo: req.repo, revision: req.revision, modelsDir } },
    t ? { hubToken: t } : {},
  );
  return { jobId, modelsDir };
}
