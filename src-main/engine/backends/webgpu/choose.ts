/**
 * Whether a training run uses Lathe's own GPU backend (`ep: 'gpu'`), with the reason in plain words.
 * 'gpu' asked for explicitly must work or fail clearly (never a silent downgrade); 'auto' takes it only
 * where a real (hardware) adapter exists and the run uses nothing the backend lacks, else the caller
 * falls back to onnxruntime's choice (backends/onnx/ep.ts).
 */
import { existsSync, readdirSync } from 'node:fs';
import { UserError } from '../../../util/progress';
import { describeGpu, openGpu } from './device';

export interface GpuBackendChoice {
  use: boolean;
  /** One sentence for the log and the UI. */
  reason: string;
  /** 'auto' found only a software adapter (lavapipe, SwiftShader): the caller should not pick onnxruntime's WebGPU EP on it either. */
  softwareOnly?: boolean;
}

/** What of a training configuration the GPU backend cannot run yet (null: it runs all of it; today it runs every configuration, the seam stays for the next feature). */
export function gpuUnsupported(_cfg: { compute?: string; quantization?: string; pagedOptimizer?: boolean; method?: string }): string | null {
  // (runs on it: preference tuning, the paged optimizer, f16 compute: f16 activations, f32 LoRA masters and
  // AdamW, array<f16> storage where the adapter has shader-f16)
  return null;
}

export async function chooseGpuBackend(pref: string, unsupported: string | null, hasGpuDevice: boolean): Promise<GpuBackendChoice> {
  if (pref !== 'gpu' && pref !== 'auto') return { use: false, reason: `device ${pref} requested` };
  if (pref === 'gpu') {
    if (unsupported) throw new UserError('engine.gpu-unsupported', `Lathe's GPU backend cannot run this configuration: ${unsupported}.`, 'Choose another device (cpu, webgpu) or change the setting.');
    try {
      const { report } = await openGpu();
      return { use: true, reason: `Using Lathe's GPU backend as requested: ${describeGpu(report).slice(0, 2).join('; ')}` };
    } catch (e) {
      throw new UserError('engine.gpu-unavailable', `Lathe's GPU backend was requested but cannot be used: ${(e as Error).message}`, 'Choose another device (cpu) in the settings.');
    }
  }
  if (!hasGpuDevice) return { use: false, reason: 'no GPU device on this machine' };
  if (unsupported) return { use: false, reason: unsupported };
  try {
    const { report } = await openGpu();
    if (report.software) return { use: false, reason: 'the only WebGPU adapter is a software one (slower than the CPU)', softwareOnly: true };
    return { use: true, reason: `Using Lathe's GPU backend: ${describeGpu(report).slice(0, 2).join('; ')}` };
  } catch (e) {
    return { use: false, reason: (e as Error).message };
  }
}

/**
 * Whether this machine has a GPU device node (Linux: an NVIDIA device or a DRI render node; other
 * systems: assumed). Cheap (no driver is opened), so the app's main process can ask it for its menu.
 */
export function hasGpuDevice(): boolean {
  if (process.platform !== 'linux') return true;
  try {
    return existsSync('/dev/nvidia0') || readdirSync('/dev/dri').some((f) => f.startsWith('renderD'));
  } catch {
    return false;
  }
}

/**
 * The device a run with `pref` is expected to train on, with the reason in plain words, for the app's
 * device menu (without opening a driver: the run checks the adapter again when it starts, and a
 * software-only adapter then falls back to the CPU with its reason in the log).
 */
export function expectedDevice(pref: string, hasGpu: boolean, unsupported: string | null): { device: 'gpu' | 'cpu' | 'webgpu' | 'cuda'; reason: string } {
  switch (pref) {
    case 'gpu':
      return unsupported
        ? { device: 'gpu', reason: `GPU (Lathe) was chosen, but it cannot run this setup: ${unsupported}. Pick another device or change the setting.` }
        : { device: 'gpu', reason: 'GPU (Lathe): Lathe\'s own GPU kernels, chosen by you.' };
    case 'cpu': return { device: 'cpu', reason: 'CPU, chosen by you.' };
    case 'webgpu': return { device: 'webgpu', reason: 'GPU through onnxruntime\'s WebGPU, chosen by you.' };
    case 'cuda': return { device: 'cuda', reason: 'NVIDIA GPU through onnxruntime\'s CUDA, chosen by you (needs CUDA and cuDNN installed).' };
    default:
      if (!hasGpu) return { device: 'cpu', reason: 'Automatic: CPU, because no GPU was found on this computer.' };
      if (unsupported) return { device: 'cpu', reason: `Automatic: a GPU was found, but Lathe's GPU kernels cannot run this setup yet (${unsupported}); onnxruntime picks the device.` };
      return { device: 'gpu', reason: 'Automatic: GPU (Lathe), because a GPU was found on this computer (checked again when training starts).' };
  }
}
