/**
 * `--ep` for the forward-only commands (eval, logits, generate, chat): onnxruntime's EPs or Lathe's GPU
 * backend. Without the flag (or with `--ep auto`) the device is chosen as the app's jobs choose it
 * (services/device.ts): Lathe's GPU backend where a hardware GPU adapter exists, the CPU otherwise.
 */
import type { CliContext } from './types';
import { flagString } from './args';
import type { EpName } from '../engine/backends/onnx';
import { UserError } from '../util/progress';
import { hasGpuDevice } from '../engine/backends/webgpu/choose';

export type CliEp = EpName | 'gpu';

/** The `--ep` flag as given: a device, 'auto', or undefined (absent: automatic). */
export function inferEpFlag(ctx: CliContext): CliEp | 'auto' | undefined {
  const v = flagString(ctx.flags, 'ep');
  if (v === undefined) return undefined;
  if (v !== 'cpu' && v !== 'webgpu' && v !== 'cuda' && v !== 'gpu' && v !== 'auto') {
    throw new UserError('cli.ep', `--ep must be auto, cpu, webgpu, cuda or gpu (got "${v}").`, 'Leave --ep out to let Lathe choose (the GPU where one exists, else the CPU).');
  }
  return v;
}

/**
 * The device a forward-only command runs on: the flag's, or for automatic the GPU backend where a hardware
 * adapter exists (its reason printed on stderr) and otherwise undefined (the CPU EP, as before).
 */
export async function resolveEpFlag(ctx: CliContext, hasGpu: boolean = hasGpuDevice()): Promise<CliEp | undefined> {
  const f = inferEpFlag(ctx);
  if (f !== undefined && f !== 'auto') return f;
  if (!hasGpu) return undefined; // no GPU device node: the CPU, nothing opened
  const { resolveDevice } = await import('../services/device');
  const d = await resolveDevice('auto', hasGpu);
  if (!ctx.json) ctx.err(`Device: ${d.reason}`);
  return d.device === 'gpu' ? 'gpu' : undefined;
}

/**
 * Runs a command; when `--ep gpu` was given, or automatic may have opened the adapter to look, Dawn is closed afterwards (an open device keeps Node alive).
 */
export async function closingGpu<T>(ctx: CliContext, run: () => Promise<T>): Promise<T> {
  const flag = inferEpFlag(ctx);
  const mayOpen = flag === 'gpu' || ((flag === undefined || flag === 'auto') && hasGpuDevice());
  try {
    return await run();
  } finally {
    if (mayOpen) await (await import('../engine/backends/webgpu/device')).closeGpu();
  }
}
