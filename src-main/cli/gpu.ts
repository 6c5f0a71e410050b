/** `--ep` for the forward-only commands (eval, logits, generate, chat): onnxruntime's EPs or Lathe's GPU backend. */
import type { CliContext } from './types';
import { flagString } from './args';
import type { EpName } from '../engine/backends/onnx';
import { UserError } from '../util/progress';

export function inferEpFlag(ctx: CliContext): EpName | 'gpu' | undefined {
  const v = flagString(ctx.flags, 'ep');
  if (v === undefined) return undefined;
  if (v !== 'cpu' && v !== 'webgpu' && v !== 'cuda' && v !== 'gpu') throw new UserError('cli.ep', `--ep must be cpu, webgpu, cuda or gpu (got "${v}").`);
  return v;
}

/** Runs a command; when it used Lathe's GPU backend, Dawn is closed afterwards (an open device keeps Node alive). */
export async function closingGpu<T>(ctx: CliContext, run: () => Promise<T>): Promise<T> {
  try {
    return await run();
  } finally {
    if (flagString(ctx.flags, 'ep') === 'gpu') await (await import('../engine/backends/webgpu/device')).closeGpu();
  }
}
