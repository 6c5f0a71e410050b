/** Bench modules run by `npm run bench` (bin/bench.mjs). Each exports `bench(report)`. */
export const benches = [
  { name: 'engine', load: () => import('./engine') },
  { name: 'data', load: () => import('./data') },
  { name: 'train', load: () => import('./train') },
  { name: 'recompute', load: () => import('./recompute') },
  { name: 'preference', load: () => import('./preference') },
  { name: 'memory', load: () => import('./memory') },
  { name: 'generate', load: () => import('./generate') },
  { name: 'realsize', load: () => import('./realsize') },
  { name: 'gguf', load: () => import('./gguf') },
  { name: 'webgpu', load: () => import('./webgpu') },
];
