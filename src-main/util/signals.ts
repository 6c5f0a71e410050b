/**
 * Termination signals handled like Ctrl+C: SIGINT (terminal), SIGTERM (kill, service managers, CI
 * timeouts) and SIGHUP (terminal closed). The default action of SIGTERM/SIGHUP ends the process at
 * once, leaving its work folders (`.work-<pid>`) and temp files behind; handled, they cancel the work,
 * which cleans up after itself on the way out.
 */
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, rmSync } from 'node:fs';
import path from 'node:path';
import { constants } from 'node:os';
import { hasJobV8Flags, JOB_V8_FLAGS } from './v8-flags';

export const TERMINATING_SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;
export type TerminatingSignal = (typeof TERMINATING_SIGNALS)[number];

/** A second signal this soon after the first is the same event delivered twice (group + forwarded), not a demand to hurry. */
const REPEAT_MS = 1000;

/**
 * Calls `onFirst` on the first terminating signal. A repeat after REPEAT_MS ends the process at once
 * (exit 128 + signal number), as a second Ctrl+C does. Returns a function that removes the handlers.
 */
export function onTerminate(onFirst: (signal: TerminatingSignal) => void): () => void {
  let first = 0;
  const handler = (signal: TerminatingSignal): void => {
    const now = Date.now();
    if (first === 0) {
      first = now;
      onFirst(signal);
    } else if (now - first > REPEAT_MS) {
      process.exit(128 + (constants.signals[signal] ?? 15));
    }
  };
  for (const s of TERMINATING_SIGNALS) process.on(s, handler);
  return () => {
    for (const s of TERMINATING_SIGNALS) process.off(s, handler);
  };
}

/**
 * Like relaunchWithJobFlags, but asynchronous so this process stays responsive: terminating signals
 * it receives are passed on to the child (which cancels its work and cleans up), and this process
 * waits for the child to finish. Returns the child's exit code, or null when this process already has
 * the flags and should go on itself.
 */
export async function relaunchWithJobFlagsForwardingSignals(script: string, args: readonly string[]): Promise<number | null> {
  if (hasJobV8Flags()) return null;
  const child = spawn(process.execPath, [...process.execArgv, ...JOB_V8_FLAGS, script, ...args], { stdio: 'inherit' });
  const forward = (signal: TerminatingSignal): void => { child.kill(signal); };
  for (const s of TERMINATING_SIGNALS) process.on(s, forward);
  try {
    return await new Promise<number>((resolve, reject) => {
      child.once('error', reject);
      child.once('exit', (code, signal) => resolve(code ?? 128 + (signal ? (constants.signals[signal as TerminatingSignal] ?? 15) : 1)));
    });
  } finally {
    for (const s of TERMINATING_SIGNALS) process.off(s, forward);
  }
}

/** Whether a process with this id exists (signal 0 checks without sending anything). */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM'; // exists, owned by someone else
  }
}

/**
 * Removes `<prefix><pid>` folders in `dir` left by processes that are gone (killed with SIGKILL, power
 * cut) and by an earlier process that had this process's id. Folders of live processes stay.
 * Returns the names removed.
 */
export function removeStaleWorkDirs(dir: string, prefix = '.work-'): string[] {
  const removed: string[] = [];
  if (!existsSync(dir)) return removed;
  for (const name of readdirSync(dir)) {
    if (!name.startsWith(prefix)) continue;
    const pid = Number(name.slice(prefix.length));
    if (!Number.isInteger(pid) || pid <= 0) continue;
    if (pid !== process.pid && processAlive(pid)) continue;
    rmSync(path.join(dir, name), { recursive: true, force: true });
    removed.push(name);
  }
  return removed;
}
