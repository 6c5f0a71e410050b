import { defineConfig } from 'electron-vite';
import { svelte } from '@sveltejs/vite-plugin-svelte';
import { resolve } from 'node:path';

export default defineConfig({
  main: {
    build: {
      outDir: 'out/main',
      rollupOptions: {
        input: {
          index: resolve('src-main/app/main.ts'),
          'job-process': resolve('src-main/services/jobs/job-process.ts'),
          // Worker-thread entries, found next to the bundle by src-main/util/worker.ts.
          'engine-worker': resolve('src-main/engine/backends/onnx/worker-main.ts'),
          'clean-worker': resolve('src-main/data/clean/worker-main.ts'),
          'offload-worker': resolve('src-main/services/offload/worker-main.ts'),
          'gguf-quant-worker': resolve('src-main/export/gguf/quant-worker.ts'),
        },
        // Native and large runtime packages stay in node_modules.
        external: ['electron', 'onnxruntime-node', 'tokenizers', 'electron-store', 'node-llama-cpp'],
      },
    },
  },
  preload: {
    build: {
      outDir: 'out/preload',
      // Sandboxed preloads must be one CommonJS file: bundle everything but electron.
      externalizeDeps: false,
      rollupOptions: {
        input: { preload: resolve('src-main/app/preload.ts') },
        external: ['electron'],
        output: { format: 'cjs', entryFileNames: '[name].cjs' },
      },
    },
  },
  renderer: {
    root: 'src-renderer',
    plugins: [svelte()],
    build: {
      outDir: 'out/renderer',
      rollupOptions: { input: resolve('src-renderer/index.html') },
    },
  },
});
