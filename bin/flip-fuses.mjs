#!/usr/bin/env node
// Packaging step: flip the Electron fuses of a packaged Lathe binary (run it on the packaged app, after
// electron-builder / electron-forge has copied Electron, before signing). See docs/packaging.md.
//
//   node bin/flip-fuses.mjs <path to the packaged Electron binary or .app>
import { flipFuses, getCurrentFuseWire, FuseV1Options, FuseVersion, FuseState } from '@electron/fuses';
import { pathToFileURL } from 'node:url';

/** The fuses Lathe ships with: no Node mode, no NODE_OPTIONS or --inspect, the app only from its checked asar. */
export const LATHE_FUSES = {
  version: FuseVersion.V1,
  // `ELECTRON_RUN_AS_NODE=1 lathe` would turn the signed app into a plain Node interpreter.
  [FuseV1Options.RunAsNode]: false,
  [FuseV1Options.EnableCookieEncryption]: true,
  // NODE_OPTIONS=--require=... and --inspect would let anyone who can start the app run code inside it.
  [FuseV1Options.EnableNodeOptionsEnvironmentVariable]: false,
  [FuseV1Options.EnableNodeCliInspectArguments]: false,
  // The app's code is read only from app.asar, whose hash is checked against the one embedded at packaging.
  [FuseV1Options.EnableEmbeddedAsarIntegrityValidation]: true,
  [FuseV1Options.OnlyLoadAppFromAsar]: true,
  // file:// pages get no extra privileges (the window loads our bundle; nothing needs them).
  [FuseV1Options.GrantFileProtocolExtraPrivileges]: false,
};

/** Flip the fuses and read them back; throws naming any fuse that did not take. */
export async function applyLatheFuses(binary) {
  await flipFuses(binary, LATHE_FUSES);
  const wire = await getCurrentFuseWire(binary);
  for (const [key, want] of Object.entries(LATHE_FUSES)) {
    if (key === 'version') continue;
    const got = wire[key];
    const expected = want ? FuseState.ENABLE : FuseState.DISABLE;
    if (got !== expected && got !== FuseState.REMOVED) {
      throw new Error(`Fuse ${FuseV1Options[key]} is ${got}, expected ${expected}`);
    }
  }
  return wire;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const binary = process.argv[2];
  if (!binary) {
    process.stderr.write('Usage: node bin/flip-fuses.mjs <path to the packaged Electron binary or .app>\n');
    process.exit(2);
  }
  await applyLatheFuses(binary);
  process.stdout.write(`Fuses set on ${binary}\n`);
}
