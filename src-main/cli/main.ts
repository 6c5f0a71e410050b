/**
 * `lathe`: the headless CLI over the same services the app uses. `lathe help` lists commands;
 * `--json` makes a command print exactly one JSON value on stdout.
 */
import type { CliCommand, CliContext } from './types';
import { loadCommands } from './commands';
import { parseArgs } from './args';
import { UserError, CancelledError } from '../util/progress';
import { onTerminate } from '../util/signals';

function match(commands: CliCommand[], words: string[]): CliCommand | undefined {
  let best: CliCommand | undefined;
  for (const c of commands) {
    if (c.path.length <= words.length && c.path.every((p, i) => words[i] === p)) {
      if (!best || c.path.length > best.path.length) best = c;
    }
  }
  return best;
}

export function helpText(commands: CliCommand[], words: string[] = []): string {
  const target = words.length ? match(commands, words) : undefined;
  if (target) return `lathe ${target.path.join(' ')} — ${target.summary}\n\n${target.usage}\n`;
  const width = Math.max(...commands.map((c) => c.path.join(' ').length));
  const lines = commands
    .slice()
    .sort((a, b) => a.path.join(' ').localeCompare(b.path.join(' ')))
    .map((c) => `  ${c.path.join(' ').padEnd(width)}  ${c.summary}`);
  return `Lathe — adapt an open LLM to your domain on your own GPU.\n\nUsage: lathe <command> [options] [--json]\n\nCommands:\n${lines.join('\n')}\n\nRun \`lathe help <command>\` for its options.\n`;
}

export async function main(argv: string[], io = { out: (s: string) => process.stdout.write(s + '\n'), err: (s: string) => process.stderr.write(s + '\n') }): Promise<number> {
  const commands = await loadCommands();
  const { positional, flags } = parseArgs(argv);
  if (positional.length === 0 || positional[0] === 'help' || (flags['help'] === true && positional.length === 0)) {
    io.out(helpText(commands, positional.slice(1)));
    return 0;
  }
  const cmd = match(commands, positional);
  if (!cmd) {
    io.err(`Unknown command "${positional.join(' ')}". Run \`lathe help\` for the list.`);
    return 2;
  }
  if (flags['help'] === true) {
    io.out(helpText(commands, cmd.path));
    return 0;
  }
  const abort = new AbortController();
  // Ctrl+C, kill (SIGTERM) and a closed terminal (SIGHUP) all cancel: the command cleans up on its way out.
  const offSignals = onTerminate(() => abort.abort());
  const json = flags['json'] === true;
  const ctx: CliContext = { args: positional.slice(cmd.path.length), flags, json, out: io.out, err: io.err, signal: abort.signal };
  try {
    const result = await cmd.run(ctx);
    if (json && result !== undefined) io.out(JSON.stringify(result, null, 2));
    return 0;
  } catch (err) {
    if (err instanceof CancelledError) {
      io.err('Cancelled.');
      return 130;
    }
    const e = err instanceof UserError ? { code: err.code, message: err.message, hint: err.hint } : { code: 'error', message: (err as Error).message };
    if (json) io.out(JSON.stringify({ error: e }, null, 2));
    else io.err(`Error: ${e.message}${e.hint ? `\nWhat to do: ${e.hint}` : ''}`);
    return 1;
  } finally {
    offSignals();
  }
}
