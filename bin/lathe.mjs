#!/usr/bin/env node
// `lathe` CLI: runs the TypeScript sources through tsx (no build step needed).
import { register } from 'tsx/esm/api';
import { fileURLToPath } from 'node:url';
register();
const args = process.argv.slice(2);
// Corpus preparation runs with the job processes' V8 flags (see src-main/util/v8-flags.ts).
// Async, so SIGTERM/SIGHUP reach the child, which cancels and removes its work folder.
const { relaunchWithJobFlagsForwardingSignals } = await import('../src-main/util/signals.ts');
const code = args[0] === 'prepare' ? await relaunchWithJobFlagsForwardingSignals(fileURLToPath(import.meta.url), args) : null;
if (code !== null) process.exitCode = code;
else {
  const { main } = await import('../src-main/cli/main.ts');
  process.exitCode = await main(args);
}
