/**
 * Execution-provider selection: CUDA -> WebGPU -> CPU, each tried only when it can work here, with a
 * plain-words reason for the choice that the UI shows. Override with `prefer` or the env var LATHE_EP
 * (cpu | webgpu | cuda); an override that cannot work is an error, never a silent downgrade.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { UserError } from '../../../util/progress';
import { ensureXdgRuntimeDir } from '../../runtime/env';
import type { OnnxModel } from '../../onnx/spec';
import { EngineSession, errorText, type EpName } from './session';
import { hostTensor } from '../../runtime/tensor';

export interface EpAttempt {
  ep: EpName;
  ok: boolean;
  /** Why it was (not) usable, in plain words. */
  reason: string;
}

export interface EpChoice {
  ep: EpName;
  /** One sentence for the user, e.g. "Using WebGPU: adapter found; CUDA not installed." */
  reason: string;
  attempts: EpAttempt[];
}

export interface SelectEpOptions {
  /** Forces one EP (wins over LATHE_EP). */
  prefer?: EpName;
  /** Defaults to process.env; tests pass their own. */
  env?: Record<string, string | undefined>;
}

const EP_LABEL: Record<EpName, string> = { cuda: 'CUDA (NVIDIA)', webgpu: 'WebGPU', cpu: 'CPU' };
const EP_NAMES: readonly EpName[] = ['cuda', 'webgpu', 'cpu'];

let cached: Map<EpName, Promise<EpAttempt>> | undefined;

export async function selectEp(opts: SelectEpOptions = {}): Promise<EpChoice> {
  const env = opts.env ?? process.env;
  const forced = opts.prefer ?? parseEpOverride(env.LATHE_EP);
  if (forced) {
    const a = await probeEp(forced);
    if (!a.ok) {
      throw new UserError('engine.ep-unavailable', `${EP_LABEL[forced]} was requested but cannot be used: ${a.reason}`,
        opts.prefer ? 'Choose another device in the settings.' : 'Unset LATHE_EP (or set it to cpu, webgpu or cuda) and try again.');
    }
    const by = opts.prefer ? 'as requested' : `as requested by LATHE_EP=${env.LATHE_EP}`;
    return { ep: forced, reason: `Using ${EP_LABEL[forced]} ${by}: ${a.reason}`, attempts: [a] };
  }
  const attempts: EpAttempt[] = [];
  for (const ep of EP_NAMES) {
    const a = await probeEp(ep);
    attempts.push(a);
    if (a.ok) {
      const skipped = attempts.filter((x) => !x.ok).map((x) => `${EP_LABEL[x.ep]}: ${x.reason}`);
      const reason = `Using ${EP_LABEL[ep]}: ${a.reason}` + (skipped.length ? ` (Not used — ${skipped.join('; ')})` : '');
      return { ep, reason, attempts };
    }
  }
  throw new Error(`No execution provider works, not even the CPU: ${attempts.map((a) => a.reason).join('; ')}`);
}

export function parseEpOverride(v: string | undefined): EpName | undefined {
  if (v === undefined || v === '' || v === 'auto') return undefined;
  const lower = v.toLowerCase();
  if ((EP_NAMES as readonly string[]).includes(lower)) return lower as EpName;
  throw new UserError('engine.bad-ep-override', `LATHE_EP is "${v}", which is not a device Lathe knows.`,
    'Set LATHE_EP to cpu, webgpu, cuda or auto (or unset it).');
}

/** Probes once per process (a failed WebGPU probe is costly); `resetEpProbes` is for tests. */
export function probeEp(ep: EpName): Promise<EpAttempt> {
  cached ??= new Map();
  let p = cached.get(ep);
  if (!p) {
    p = ep === 'cuda' ? probeCuda() : ep === 'webgpu' ? probeWebgpu() : probeCpu();
    cached.set(ep, p);
  }
  return p;
}

export function resetEpProbes(): void {
  cached = undefined;
}

/** The folder holding libonnxruntime and (when installed) the CUDA provider libraries. */
export function ortNativeDir(): string {
  const req = createRequire(import.meta.url);
  const pkg = dirname(req.resolve('onnxruntime-node/package.json'));
  return join(pkg, 'bin', 'napi-v6', process.platform, process.arch);
}

async function probeCuda(): Promise<EpAttempt> {
  const lib = process.platform === 'win32' ? 'onnxruntime_providers_cuda.dll' : 'libonnxruntime_providers_cuda.so';
  if (!existsSync(join(ortNativeDir(), lib))) {
    return { ep: 'cuda', ok: false, reason: 'the CUDA add-on of onnxruntime is not installed (run `npm run setup:cuda` on a machine with an NVIDIA GPU, CUDA 12 and cuDNN 9)' };
  }
  return tinySession('cuda', 'NVIDIA GPU found');
}

async function probeWebgpu(): Promise<EpAttempt> {
  ensureXdgRuntimeDir();
  return tinySession('webgpu', 'a WebGPU adapter was found');
}

async function probeCpu(): Promise<EpAttempt> {
  return tinySession('cpu', 'always available (slowest)');
}

/** A one-Add model run once: creation proves the EP loads, the run proves the device executes. */
export const PROBE_MODEL: OnnxModel = {
  opsets: [{ domain: '', version: 21 }],
  graph: {
    name: 'probe', initializers: [],
    inputs: [{ name: 'x', type: 'float32', shape: [2] }],
    outputs: [{ name: 'y', type: 'float32', shape: [2] }],
    nodes: [{ op: 'Add', name: 'probe_add', inputs: ['x', 'x'], outputs: ['y'] }],
  },
};

async function tinySession(ep: EpName, okReason: string): Promise<EpAttempt> {
  let s: EngineSession | undefined;
  try {
    s = await EngineSession.create(PROBE_MODEL, { ep, disableCpuFallback: ep !== 'cpu', logSeverity: 4 });
    const out = await s.run({ x: hostTensor('float32', [2], [1, 2]) });
    const y = out.y!.data as Float32Array;
    if (y[0] !== 2 || y[1] !== 4) return { ep, ok: false, reason: `the device returned wrong numbers (${[...y]}) for a test sum` };
    return { ep, ok: true, reason: okReason };
  } catch (e) {
    return { ep, ok: false, reason: explainProbeFailure(ep, errorText(e)) };
  } finally {
    await s?.dispose();
  }
}

function explainProbeFailure(ep: EpName, msg: string): string {
  if (ep === 'webgpu' && /adapter/i.test(msg)) {
    return 'no WebGPU adapter (no supported GPU driver; on Linux without a GPU, Mesa 25 lavapipe provides one)';
  }
  if (ep === 'cuda' && /shared library|load library/i.test(msg)) {
    return 'the CUDA libraries could not be loaded (needs an NVIDIA driver, CUDA 12 and cuDNN 9)';
  }
  return `it failed to start (${msg.split('\n')[0]})`;
}
