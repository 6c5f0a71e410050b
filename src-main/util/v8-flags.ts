import { spawnSync } from 'node:child_process';
/**
 * V8 flags for the processes that run jobs (the app's job processes, the CLI, the bench). They must
 * be given when the process starts.
 *
 * --max-semi-space-size=32: a young generation of up to 32 MiB per half (V8's default is 16 on
 * 64-bit). Corpus preparation parses every document into a string on the job's main thread and
 * keeps a batch of them alive while worker threads clean the previous ones; with the default, the
 * scavenger copied those survivors again and again (1.1 s of a 1 GB corpus's 7 s first pass, on
 * the thread every cleaning thread waits for). Measured with 16 / 32 / 64 MiB on the 1 GB bench
 * corpus: pass 1 ≈ 7.3 / 6.8 / 6.6 s. 32 keeps most of the gain for at most ~64 MiB more memory.
 *
 * Where they take effect: Node processes started with them (`fork` in services/jobs/node-process.ts,
 * the relaunch below). The app also passes them to `utilityProcess.fork`, but Electron's utility
 * process creates its V8 isolate before it sees `execArgv` (shell/services/node/node_service.cc hands
 * them only to node::CreateEnvironment), so there they most likely show in `process.execArgv` and do
 * nothing; harmless either way (not verifiable here: Electron cannot run on the dev machine).
 */
export const JOB_V8_FLAGS: readonly string[] = ['--max-semi-space-size=32'];

/** Whether this process was started with JOB_V8_FLAGS. */
export function hasJobV8Flags(execArgv: readonly string[] = process.execArgv): boolean {
  return JOB_V8_FLAGS.every((f) => execArgv.includes(f));
}

/**
 * Runs `script` again in a child Node process started with JOB_V8_FLAGS (same arguments, same
 * terminal) unless this process already has them; returns the child's exit code, or null when this
 * process has the flags and should go on itself. For the CLI and the bench, which are started as
 * plain `node script`.
 */
export function relaunchWithJobFlags(script: string, args: readonly string[]): number | null {
  if (hasJobV8Flags()) return null;
  const r = spawnSync(process.execPath, [...process.execArgv, ...JOB_V8_FLAGS, script, ...args], { stdio: 'inherit' });
  if (r.error) throw r.error;
  return r.status ?? 1;
}
