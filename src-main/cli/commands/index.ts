/** Every module of `lathe` subcommands. Subsystems add their module here. */
import type { CliCommand } from '../types';
import { commands as core } from './core';

export async function loadCommands(): Promise<CliCommand[]> {
  const modules: CliCommand[][] = [core];
  return modules.flat();
}
