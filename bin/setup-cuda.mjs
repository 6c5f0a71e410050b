#!/usr/bin/env node
// `npm run setup:cuda`: opt-in download of onnxruntime-node's CUDA EP (NVIDIA GPUs with CUDA 12 + cuDNN 9).
// `npm ci` skips it (package.json allowScripts denies its install script); run this once on a machine with network access.
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import path from 'node:path';

const require = createRequire(import.meta.url);
const script = path.join(path.dirname(require.resolve('onnxruntime-node/package.json')), 'script', 'install.js');
// The env var asks install.js for the CUDA 12 files explicitly.
const r = spawnSync(process.execPath, [script], { stdio: 'inherit', env: { ...process.env, ONNXRUNTIME_NODE_INSTALL: 'cuda12' } });
if (r.status !== 0) {
  console.error('\nThe CUDA EP could not be installed. It needs network access, an NVIDIA driver, CUDA 12 and cuDNN 9.\n' +
    'Lathe still works without it: training runs on the WebGPU EP (any GPU) or the CPU.');
  process.exit(r.status ?? 1);
}
console.log('CUDA EP installed. Lathe will now prefer CUDA on this machine (override with LATHE_EP=webgpu or cpu).');
