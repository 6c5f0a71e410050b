/**
 * Issue 21's app buttons as job kinds: "Run on bigger hardware" (a hand-off folder from the Configure page's
 * configuration or a run) and "Import adapter" (a PEFT adapter becomes a run the Export page lists).
 */
import { existsSync, mkdirSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import '../../helpers/cache-env';
import { JobHost } from '../../../src-main/services/jobs/host';
import { spawnNodeJobProcess } from '../../../src-main/services/jobs/node-process';
import { TrainConfigSchema } from '../../../src-main/engine/train/config';
import { exportModel } from '../../../src-main/export';
import { listRuns } from '../../../src-main/services/runs';
import { dispatch } from '../../../src-main/services';
import { JobRequest } from '../../../src-main/contract';
import { tinyDataset, tinyModel } from '../../helpers/tiny';
import { tempDir, testServices } from '../../helpers/services';
import { handRun } from '../export/helpers';

describe('hand-off and import jobs', () => {
  it('the contract takes a run folder or a configuration, not both and not neither', () => {
    const base = { kind: 'handoff', params: { target: 'accelerate', gpus: 2, out: '/tmp/x' } };
    expect(JobRequest.safeParse({ ...base, params: { ...base.params, run: '/tmp/run' } }).success).toBe(true);
    expect(JobRequest.safeParse(base).success).toBe(false);
    const config = TrainConfigSchema.parse({ model: '/m', dataset: '/d', out: '/o' });
    expect(JobRequest.safeParse({ ...base, params: { ...base.params, run: '/tmp/run', config } }).success).toBe(false);
  });

  it('hands the Configure page\'s configuration to accelerate, and imports a PEFT adapter as a run', async () => {
    const model = await tinyModel('llama');
    const dataset = await tinyDataset(model);
    const project = tempDir('lathe-ho-project-');
    const config = TrainConfigSchema.parse({ model, dataset, out: path.join(project, 'runs', 'r1'), batchSize: 4, gradAccum: 2, maxSteps: 10 });
    const host = new JobHost(spawnNodeJobProcess);
    try {
      const out = path.join(tempDir('lathe-ho-out-'), 'job');
      const job = await host.wait(host.start({ kind: 'handoff', params: { config, target: 'accelerate', gpus: 2, nodes: 1, strategy: 'fsdp', out } }));
      expect(job.state, JSON.stringify(job.error)).toBe('done');
      const r = job.result as { out: string; files: string[]; warnings: string[]; batch: { perDevice: number; gradAccum: number } };
      expect(r.out).toBe(out);
      for (const f of ['train.py', 'README.md', 'job.json', 'accelerate/fsdp.yaml', 'launch/slurm.sbatch']) expect(existsSync(path.join(out, f)), f).toBe(true);
      expect(readdirSync(path.join(out, 'data')).some((f) => f.endsWith('.parquet'))).toBe(true);
      expect(Array.isArray(r.warnings)).toBe(true);
      expect(existsSync(config.out)).toBe(false); // nothing trained, nothing written in the project

      // Import: Lathe's own PEFT export of a (hand-made) run comes back as a run in the project's runs folder.
      const run = path.join(tempDir('lathe-ho-run-'), 'run');
      mkdirSync(run, { recursive: true });
      await handRun(model, run);
      const adapter = path.join(tempDir('lathe-ho-peft-'), 'adapter');
      await exportModel({ format: 'peft', model, adapter: run, out: adapter, baseModelName: 'org/tiny' });
      const imported = path.join(project, 'runs', 'imported-1');
      const imp = await host.wait(host.start({ kind: 'import-adapter', params: { adapter, model, out: imported } }));
      expect(imp.state, JSON.stringify(imp.error)).toBe('done');
      const runs = listRuns(project);
      expect(runs.map((x) => x.name)).toContain('imported-1');
      expect(runs.find((x) => x.name === 'imported-1')!.checkpoints.length).toBe(1);
      // A folder that is not an adapter is refused in plain words.
      const bad = await host.wait(host.start({ kind: 'import-adapter', params: { adapter: project, model, out: path.join(project, 'runs', 'imported-2') } }));
      expect(bad.state).toBe('failed');
      expect(bad.error!.message).toMatch(/adapter/i);
    } finally {
      host.dispose();
    }
  }, 240_000);

  it('is confined: the hand-off folder may not be a system place, and the run must be in a project', async () => {
    const s = testServices();
    try {
      const res = await dispatch(s, 'jobs.start', { kind: 'handoff', params: { run: '/tmp', target: 'axolotl', gpus: 1, out: '/etc/lathe-job' } });
      expect(res).toMatchObject({ ok: false, error: { code: 'paths.notAllowed' } });
      const imp = await dispatch(s, 'jobs.start', { kind: 'import-adapter', params: { adapter: '/home', model: '/tmp', out: '/tmp/x' } });
      expect(imp).toMatchObject({ ok: false, error: { code: 'paths.notAllowed' } });
    } finally {
      s.jobs.dispose();
      await s.offload.close();
    }
  });
});
