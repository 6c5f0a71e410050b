/**
 * The weight cache as the app and the CLI see it (engine/weights/cache.ts): how much disk the converted
 * and quantized weights take, per model, and clearing them (later runs convert again).
 */
import { cacheInfo, clearCache } from '../engine/weights/cache';

export interface CacheInfo {
  root: string;
  bytes: number;
  entries: { key: string; model: string | null; bytes: number; files: number }[];
}

export function weightCacheInfo(root?: string): CacheInfo {
  return cacheInfo(root);
}

export function clearWeightCache(root?: string): { root: string; freed: number } {
  return clearCache(root);
}
