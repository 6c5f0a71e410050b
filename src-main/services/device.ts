/**
 * The device the app's forward-only jobs (chat, the evaluation report) run on, with the reason in plain
 * words: `expectedDevice` for the pages' device menus (main process, no driver opened) and
 * `resolveDevice` inside the job process (opens the adapter / probes onnxruntime's EP).
 *
 * 'auto' = Lathe's GPU backend where a hardware GPU adapter exists, the CPU otherwise, as training's
 * (engine/backends/webgpu/choose.ts): no GPU device node -> CPU; a device node but only a software adapter
 * (Mesa lavapipe, SwiftShader: correct, slower than the CPU EP) -> CPU, saying so; 'gpu' asked for
 * explicitly runs on any adapter, a software one included, or fails in plain words.
 */
import { DEVICE_LABEL, DEVICE_LOG_PREFIX, type DeviceChoiceView, type DevicePref } from '../contract/chat';
import { chooseGpuBackend, hasGpuDevice } from '../engine/backends/webgpu/choose';

/** What a job with `pref` is expected to run on (the adapter itself is checked when the job starts). */
export function expectedDevice(pref: DevicePref | undefined, hasGpu: boolean = hasGpuDevice()): DeviceChoiceView {
  switch (pref ?? 'auto') {
    case 'gpu': return { device: 'gpu', reason: 'GPU (Lathe): Lathe\'s own GPU kernels, chosen by you.' };
    case 'cpu': return { device: 'cpu', reason: 'CPU, chosen by you.' };
    case 'webgpu': return { device: 'webgpu', reason: 'GPU through onnxruntime\'s WebGPU, chosen by you.' };
    case 'cuda': return { device: 'cuda', reason: 'NVIDIA GPU through onnxruntime\'s CUDA, chosen by you (needs CUDA and cuDNN installed).' };
    default:
      return hasGpu
        ? { device: 'gpu', reason: 'Automatic: GPU (Lathe), because a GPU was found on this computer (checked again when the job starts; a software-only GPU driver means the CPU).' }
        : { device: 'cpu', reason: 'Automatic: CPU, because no GPU was found on this computer.' };
  }
}

/**
 * The device a job runs on, decided in the job process. 'gpu' that cannot work, or an onnxruntime EP
 * that cannot, is a UserError (never a silent downgrade); 'auto' falls back to the CPU with the reason.
 */
export async function resolveDevice(pref: DevicePref | undefined, hasGpu: boolean = hasGpuDevice(),
  choose: typeof chooseGpuBackend = chooseGpuBackend): Promise<DeviceChoiceView> {
  const p = pref ?? 'auto';
  if (p === 'auto' && !hasGpu) return expectedDevice('auto', false); // (the menu's words: nothing to open)
  if (p === 'gpu' || p === 'auto') {
    const g = await choose(p, null, hasGpu); // (forward-only work: everything runs on the backend)
    if (g.use) return { device: 'gpu', reason: p === 'auto' ? `Automatic: ${g.reason}` : g.reason };
    return { device: 'cpu', reason: `Automatic: CPU, because ${g.reason}.` };
  }
  const { selectEp } = await import('../engine/backends/onnx/ep');
  const c = await selectEp({ prefer: p });
  return { device: c.ep, reason: c.reason };
}

/** The job's log line naming its device (the pages find it by DEVICE_LOG_PREFIX). */
export function deviceLogLine(d: DeviceChoiceView): string {
  return `${DEVICE_LOG_PREFIX}${DEVICE_LABEL[d.device]}. ${d.reason}`;
}
