/** `lathe cache size|clear`: the weight cache (converted bf16 and QLoRA weights; services/cache.ts). */
import type { CliCommand } from '../types';
import { clearWeightCache, weightCacheInfo } from '../../services/cache';
import { formatBytes } from '../../engine/memory/estimate';

export const commands: CliCommand[] = [
  {
    path: ['cache', 'size'],
    summary: 'Show how much disk the weight cache (converted and quantized weights) uses',
    usage: 'lathe cache size [--json]   (the folder: LATHE_CACHE_DIR, else the per-user cache folder)',
    run: async (ctx) => {
      const info = weightCacheInfo();
      if (!ctx.json) {
        ctx.out(`Weight cache ${info.root}: ${formatBytes(info.bytes)} in ${info.entries.length} model${info.entries.length === 1 ? '' : 's'}`);
        for (const e of info.entries) ctx.out(`  ${formatBytes(e.bytes).padStart(9)}  ${e.model ?? `(entry ${e.key})`}`);
      }
      return info;
    },
  },
  {
    path: ['cache', 'clear'],
    summary: 'Delete the weight cache (later runs convert the weights again)',
    usage: 'lathe cache clear [--json]',
    run: async (ctx) => {
      const r = clearWeightCache();
      if (!ctx.json) ctx.out(`Cleared ${formatBytes(r.freed)} from ${r.root}.`);
      return r;
    },
  },
];
