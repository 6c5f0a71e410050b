/**
 * A `lathe` subcommand. Each subsystem exports its commands from src-main/cli/commands/<name>.ts as
 * `export const commands: CliCommand[]`; src-main/cli/commands/index.ts lists those modules.
 * Commands are thin: parse flags, call a service, print. With `--json` print exactly one JSON value
 * on stdout (progress goes to stderr).
 */
export interface CliContext {
  /** Positional arguments after the command path (e.g. `lathe template render FILE` -> ['FILE']). */
  args: string[];
  /** Flags: `--name value` -> { name: 'value' }, bare `--flag` -> { flag: true }. Repeated flags -> string[]. */
  flags: Record<string, string | boolean | string[]>;
  json: boolean;
  /** Human output (suppressed nowhere; use `ctx.json` to decide what to print). */
  out: (text: string) => void;
  /** Progress and diagnostics: stderr. */
  err: (text: string) => void;
  signal: AbortSignal;
}

export interface CliCommand {
  /** Command path, e.g. ['template', 'render'] for `lathe template render`. */
  path: string[];
  /** One line for `lathe help`. */
  summary: string;
  /** Usage lines for `lathe help <command>`. */
  usage: string;
  /** Returns the JSON value printed with --json (or undefined if the command printed itself). */
  run: (ctx: CliContext) => Promise<unknown>;
}
