/** Every module of `lathe` subcommands. Modules load lazily so `lathe help` stays quick. */
import type { CliCommand } from '../types';

const modules: (() => Promise<{ commands: CliCommand[] }>)[] = [
  () => import('./core'),
  () => import('./model'),
  () => import('./train'),
  () => import('./export'),
  () => import('./prepare'),
  () => import('./tokenizer'),
  () => import('./template'),
  () => import('./generate'),
  () => import('./memory'),
  () => import('./cache'),
  () => import('./handoff'),
];

export async function loadCommands(): Promise<CliCommand[]> {
  return (await Promise.all(modules.map((m) => m()))).flatMap((m) => m.commands);
}
