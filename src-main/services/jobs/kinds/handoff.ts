/** The hand-off and adapter-import jobs (src-main/handoff; the same as `lathe handoff` / `lathe import-adapter`). */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { JobHandler } from '../context';
import type { JobRequest } from '../../../contract';
import { createHandoff, importAdapter } from '../../../handoff';

type HandoffParams = Extract<JobRequest, { kind: 'handoff' }>['params'];
type ImportParams = Extract<JobRequest, { kind: 'import-adapter' }>['params'];

export const handoffJob: JobHandler<HandoffParams> = async (p, ctx) => {
  // A configuration from the Configure page goes through the same path as a config file given to the CLI.
  const scratch = p.config ? mkdtempSync(path.join(os.tmpdir(), 'lathe-handoff-')) : null;
  try {
    let run = p.run!;
    if (scratch) {
      run = path.join(scratch, 'config.json');
      writeFileSync(run, JSON.stringify(p.config, null, 2));
    }
    return await createHandoff({
      run, target: p.target, gpus: p.gpus, nodes: p.nodes, strategy: p.strategy, out: p.out,
      ...(p.baseName ? { baseName: p.baseName } : {}),
    }, { onProgress: ctx.onProgress, onLog: ctx.onLog, signal: ctx.signal });
  } finally {
    if (scratch) rmSync(scratch, { recursive: true, force: true });
  }
};

export const importAdapterJob: JobHandler<ImportParams> = async (p, ctx) => {
  ctx.onProgress({ stage: 'Importing', message: `Reading the adapter in ${p.adapter}` });
  return importAdapter({ adapter: p.adapter, model: p.model, out: p.out, ...(p.tokenizer ? { tokenizer: p.tokenizer } : {}) });
};
