/** Download a model from the Hub (src-main/hub/download.ts), then run the same model check as a chosen folder. */
import type { JobHandler } from '../context';
import type { JobRequest } from '../../../contract';
import type { HubDownloadResult } from '../../../contract/hub';
import { downloadModel } from '../../../hub/download';
import { inspectModel } from '../../models';
import { plainEngineError } from '../../../engine/memory/oom';

type Params = Extract<JobRequest, { kind: 'hub-download' }>['params'];

export const hubDownloadJob: JobHandler<Params> = async (params, ctx) => {
  const r = await downloadModel({
    endpoint: params.endpoint, repo: params.repo, revision: params.revision, modelsDir: params.modelsDir,
    token: ctx.secrets.hubToken ?? null, signal: ctx.signal, onProgress: ctx.onProgress, onLog: ctx.onLog,
  });
  ctx.onProgress({ stage: 'Checking the model', fraction: 1 });
  let model: HubDownloadResult['model'] = null;
  let modelError: HubDownloadResult['modelError'] = null;
  try {
    model = await inspectModel(r.dir);
  } catch (err) {
    const u = plainEngineError(err);
    modelError = { code: u.code, message: u.message, ...(u.hint ? { hint: u.hint } : {}) };
  }
  ctx.onLog('info', `${r.repo} ${r.alreadyThere ? 'was already downloaded' : 'downloaded'} to ${r.dir}.`);
  const result: HubDownloadResult = {
    dir: r.dir, repo: r.repo, commit: r.commit, files: r.files.length, bytes: r.bytes, fetched: r.fetched, alreadyThere: r.alreadyThere, model, modelError,
  };
  return result;
};
