/** Core commands: projects, the self-test job, the browser bridge. */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { CliCommand, CliContext } from '../types';
import type { JobRequest } from '../../contract';
import { flagNumber, flagString } from '../args';
import { progressLine } from '../work';
import { UserError } from '../../util/progress';

/** Run one job through the job host, progress on stderr; resolves with the job's result. */
export async function runJobFromCli(request: JobRequest, ctx: CliContext): Promise<unknown> {
  const services = (await import('../node-services')).nodeServices();
  const id = services.jobs.start(request);
  let lastLine = '';
  services.jobs.onEvent((e) => {
    if (e.type === 'progress' && e.jobId === id) {
      const line = progressLine(e);
      if (line !== lastLine) ctx.err(line);
      lastLine = line;
    } else if (e.type === 'log' && e.jobId === id) ctx.err(`[${e.level}] ${e.message}`);
  });
  ctx.signal.addEventListener('abort', () => services.jobs.cancel(id));
  const final = await services.jobs.wait(id);
  if (final.state === 'failed') throw new UserError(final.error?.code ?? 'jobs.failed', final.error?.message ?? 'The job failed.', final.error?.hint);
  if (final.state === 'cancelled') throw new UserError('jobs.cancelled', 'The job was cancelled.');
  return final.result;
}

function need(value: string | undefined, what: string): string {
  if (!value) throw new UserError('cli.missing', `Missing ${what}.`, 'Run `lathe help <command>` to see the options.');
  return value;
}

export const commands: CliCommand[] = [
  {
    path: ['version'],
    summary: 'Print the Lathe version',
    usage: 'lathe version [--json]',
    run: async (ctx) => {
      const v = { version: (await import('../node-services')).packageVersion(), node: process.version, platform: `${process.platform}-${process.arch}` };
      if (!ctx.json) ctx.out(`Lathe ${v.version} (Node ${v.node}, ${v.platform})`);
      return v;
    },
  },
  {
    path: ['project', 'create'],
    summary: 'Create a project folder (datasets, runs, exports)',
    usage: 'lathe project create --in PARENT_DIR --name NAME [--json]',
    run: async (ctx) => {
      const p = await (await import('../node-services')).nodeServices().projects.create(path.resolve(need(flagString(ctx.flags, 'in'), '--in PARENT_DIR')), need(flagString(ctx.flags, 'name'), '--name NAME'));
      if (!ctx.json) ctx.out(`Created project "${p.name}" in ${p.path}`);
      return p;
    },
  },
  {
    path: ['project', 'show'],
    summary: 'Show a project',
    usage: 'lathe project show DIR [--json]',
    run: async (ctx) => {
      const p = await (await import('../node-services')).nodeServices().projects.open(path.resolve(need(ctx.args[0], 'the project folder')));
      if (!ctx.json) ctx.out(`${p.name}\n  folder: ${p.path}\n  model:  ${p.modelPath ?? '(none)'}\n  created: ${p.createdAt}`);
      return p;
    },
  },
  {
    path: ['selftest'],
    summary: 'Run the self-test job (checks the job process, progress and cancel)',
    usage: 'lathe selftest [--steps N] [--interval-ms MS] [--json]',
    run: async (ctx) => {
      const result = await runJobFromCli(
        { kind: 'selftest', params: { steps: flagNumber(ctx.flags, 'steps') ?? 10, intervalMs: flagNumber(ctx.flags, 'interval-ms') ?? 20 } },
        ctx,
      );
      if (!ctx.json) ctx.out('Self-test passed.');
      return result;
    },
  },
  {
    path: ['serve'],
    summary: 'Serve the app to a local browser (the bridge) — for development and tests',
    usage: [
      'lathe serve [--port N] [--static DIR] [--new-token]',
      '  --static DIR   the built app (default out/renderer; build it with `npm run build`)',
      '  --new-token    replace the saved key in the page address (old links and bookmarks stop working)',
      'The address keeps the same key from one start to the next (saved in the settings folder, readable only by you).',
    ].join('\n'),
    run: async (ctx) => {
      const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
      const { startBridge } = await import('../../bridge/server');
      const { bridgeToken } = await import('../../bridge/token');
      const { nodeServices, latheHome } = await import('../node-services');
      const saved = bridgeToken(latheHome(), { renew: ctx.flags['new-token'] === true });
      if (saved.fresh === 'renewed' && !ctx.json) ctx.err(`New key saved in ${saved.file}; earlier links no longer open the app.`);
      const bridge = await startBridge({
        token: saved.token,
        services: nodeServices(),
        staticDir: path.resolve(flagString(ctx.flags, 'static') ?? path.join(root, 'out/renderer')),
        port: flagNumber(ctx.flags, 'port') ?? 0,
      });
      ctx.out(ctx.json ? JSON.stringify({ url: bridge.pageUrl }) : `Lathe is served at ${bridge.pageUrl}\nPress Ctrl+C to stop.`);
      await new Promise<void>((resolve) => ctx.signal.addEventListener('abort', () => resolve()));
      await bridge.close();
      return undefined;
    },
  },
];
