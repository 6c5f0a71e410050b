/** Shared CLI plumbing: progress lines on stderr, required flags. */
import type { CliContext } from './types';
import type { ProgressReport, WorkOptions } from '../util/progress';
import { UserError } from '../util/progress';
import { flagString } from './args';

/** "42% Stage — message", the one progress line format every command prints. */
export function progressLine(p: ProgressReport): string {
  return `${p.fraction === undefined ? '' : `${Math.round(p.fraction * 100)}% `}${p.stage ?? ''}${p.message ? ` — ${p.message}` : ''}`;
}

/** WorkOptions that print progress (deduplicated) and logs to stderr and cancel on Ctrl+C. */
export function cliWork(ctx: CliContext): Required<Pick<WorkOptions, 'onProgress' | 'onLog' | 'signal'>> {
  let last = '';
  return {
    signal: ctx.signal,
    onProgress: (p) => {
      const line = progressLine(p);
      if (line !== last) ctx.err(line);
      last = line;
    },
    onLog: (level, message) => ctx.err(`[${level}] ${message}`),
  };
}

/** A flag the command cannot do without; the error names it and shows an example. */
export function requireFlag(ctx: CliContext, name: string, example = 'Run `lathe help <command>` for the options.'): string {
  const v = flagString(ctx.flags, name);
  if (!v) throw new UserError('cli.missing', `Missing --${name}.`, example.startsWith('Run') ? example : `Example: ${example}`);
  return v;
}
