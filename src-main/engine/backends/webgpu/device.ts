/// <reference types="@webgpu/types" />
/**
 * Opens Dawn in Node (npm `webgpu`: a prebuilt dawn.node) and says what the adapter can do.
 *
 * The device is requested with every feature the backend can use that the adapter offers (shader-f16,
 * subgroups, chromium-experimental-subgroup-matrix behind the allow_unsafe_apis toggle; shader-f16 on NVIDIA's
 * Vulkan driver behind vulkan_enable_f16_on_nvidia: DAWN_TOGGLES) and with the
 * adapter's own storage limits (the defaults are far lower: 128 MiB bindings, 8 storage buffers). The
 * capability report names the GEMM path and the reason it was chosen, so a user (and a bench) can see
 * why a machine runs the kernels it does; nothing a machine can't run is skipped silently.
 */
import { createRequire } from 'node:module';
import { ensureXdgRuntimeDir } from '../../runtime/env';
import { chooseGemm, type GemmChoice } from './kernels/gemm';

export interface GpuLimits {
  maxStorageBufferBindingSize: number;
  maxBufferSize: number;
  maxStorageBuffersPerShaderStage: number;
  maxComputeWorkgroupStorageSize: number;
  maxComputeInvocationsPerWorkgroup: number;
  maxComputeWorkgroupsPerDimension: number;
}

export interface GpuReport {
  adapter: { vendor: string; architecture: string; device: string; description: string };
  /** True for CPU/software adapters (lavapipe, SwiftShader): correct but slower than the CPU EP. */
  software: boolean;
  features: string[];
  limits: GpuLimits;
  /** Shapes the adapter offers for subgroup-matrix (tensor-core) multiplies; empty where none. */
  subgroupMatrixConfigs: string[];
  /** Which GEMM kernel runs and why, in plain words (kernels/gemm.ts). */
  gemm: GemmChoice;
  /** One line per notable decision (f16 loads, limits). */
  notes: string[];
}

export interface GpuContext {
  device: GPUDevice;
  report: GpuReport;
  /** The dawn.node instance: Dawn lives as long as this is referenced (and keeps Node from exiting). */
  instance: GPU;
}

const WANTED = ['shader-f16', 'subgroups', 'chromium-experimental-subgroup-matrix'] as const;

/**
 * Dawn toggles the instance is created with (dawn.node's `enable-dawn-features`, comma-separated):
 * `allow_unsafe_apis` exposes chromium-experimental-subgroup-matrix; `vulkan_enable_f16_on_nvidia` lets Dawn offer
 * shader-f16 on NVIDIA's Vulkan driver, where it withholds it by default (without it f16 compute there falls back
 * to f32 words rounded to f16: twice the activation bytes). Both are ignored where they do not apply.
 */
export const DAWN_TOGGLES = ['allow_unsafe_apis', 'vulkan_enable_f16_on_nvidia'] as const;

let opened: Promise<GpuContext> | undefined;

/**
 * The process's Dawn device (opened once). Throws a clear error when there is no adapter.
 * While it is open Node does not exit by itself: call closeGpu() when the GPU work is done.
 */
export function openGpu(): Promise<GpuContext> {
  opened ??= openDevice().catch((e: unknown) => {
    opened = undefined;
    throw e;
  });
  return opened;
}

/** Destroys the device and drops Dawn, so the process can exit. */
export async function closeGpu(): Promise<void> {
  const p = opened;
  opened = undefined;
  if (!p) return;
  const ctx = await p.catch(() => null);
  ctx?.device.destroy();
}

interface DawnModule { create(flags: string[]): GPU; globals: Record<string, unknown> }

function loadDawn(): DawnModule {
  // `webgpu` is an ESM package whose index resolves the platform's dawn.node; load it through require
  // of the native file so this works from CJS bundles and tsx alike
  const req = createRequire(import.meta.url);
  const pkgDir = req.resolve('webgpu/package.json').replace(/package\.json$/, '');
  const arch = process.platform === 'darwin' ? 'universal' : process.arch;
  return req(`${pkgDir}dist/${process.platform}-${arch}/dawn.node`) as DawnModule;
}

async function openDevice(): Promise<GpuContext> {
  ensureXdgRuntimeDir();
  let dawn: DawnModule;
  try {
    dawn = loadDawn();
  } catch (e) {
    throw new Error(`The GPU backend could not load Dawn (npm package "webgpu"): ${(e as Error).message}`);
  }
  // GPUBufferUsage, GPUMapMode, ... as globals, as in a browser
  for (const [k, v] of Object.entries(dawn.globals)) if (!(k in globalThis)) (globalThis as Record<string, unknown>)[k] = v;
  const gpu = dawn.create([`enable-dawn-features=${DAWN_TOGGLES.join(',')}`]);
  const adapter = await gpu.requestAdapter({ powerPreference: 'high-performance' });
  if (!adapter) {
    throw new Error('No WebGPU adapter: Dawn found no supported GPU driver. On Linux without a GPU, install Mesa 25 lavapipe '
      + '(mesa-vulkan-drivers from bookworm-backports) and libvulkan1; set XDG_RUNTIME_DIR to a writable folder.');
  }
  const offered = new Set<string>([...adapter.features].map(String));
  const requiredFeatures = WANTED.filter((f) => offered.has(f)) as GPUFeatureName[];
  const al = adapter.limits;
  const limits: GpuLimits = {
    maxStorageBufferBindingSize: al.maxStorageBufferBindingSize,
    maxBufferSize: al.maxBufferSize,
    maxStorageBuffersPerShaderStage: al.maxStorageBuffersPerShaderStage,
    maxComputeWorkgroupStorageSize: al.maxComputeWorkgroupStorageSize,
    maxComputeInvocationsPerWorkgroup: al.maxComputeInvocationsPerWorkgroup,
    maxComputeWorkgroupsPerDimension: al.maxComputeWorkgroupsPerDimension,
  };
  const device = await adapter.requestDevice({
    requiredFeatures,
    requiredLimits: {
      maxStorageBufferBindingSize: limits.maxStorageBufferBindingSize,
      maxBufferSize: limits.maxBufferSize,
      maxStorageBuffersPerShaderStage: limits.maxStorageBuffersPerShaderStage,
      maxComputeWorkgroupStorageSize: limits.maxComputeWorkgroupStorageSize,
    },
  });
  const info = adapter.info as GPUAdapterInfo & { subgroupMatrixConfigs?: unknown[] };
  // (Dawn's objects keep their fields on the prototype: copy them out by name)
  const configs = (info.subgroupMatrixConfigs ?? []).map((c) => {
    const o = c as Record<string, unknown>;
    return JSON.stringify({ componentType: o.componentType, resultComponentType: o.resultComponentType, M: o.M, N: o.N, K: o.K });
  });
  const adapterInfo = { vendor: info.vendor, architecture: info.architecture, device: info.device, description: info.description };
  const software = isSoftware(adapterInfo, (info as { isFallbackAdapter?: boolean }).isFallbackAdapter === true);
  // the smallest subgroup the adapter may run (Dawn reports it where the subgroups feature exists)
  const sgMin = (info as { subgroupMinSize?: number }).subgroupMinSize;
  return { device, instance: gpu, report: capabilityReport(adapterInfo, software, [...offered].sort(), limits, configs, sgMin && sgMin > 0 ? sgMin : undefined) };
}

/** lavapipe / llvmpipe / SwiftShader: a CPU pretending to be a GPU. */
export function isSoftware(a: { vendor: string; architecture: string; device: string; description: string }, fallback = false): boolean {
  return fallback || /llvmpipe|lavapipe|swiftshader|software|cpu/i.test(`${a.vendor} ${a.architecture} ${a.device} ${a.description}`);
}

/** The placement/capability report (pure, so tests can feed it any adapter). */
export function capabilityReport(adapter: GpuReport['adapter'], software: boolean, features: string[], limits: GpuLimits, subgroupMatrixConfigs: string[], subgroupSize?: number): GpuReport {
  const notes: string[] = [];
  const has = (f: string) => features.includes(f);
  const gemm = chooseGemm(features, subgroupMatrixConfigs, subgroupSize);
  notes.push('f16 and bf16 weights are read in their stored type and unpacked to f32 in the kernels\' loads (unpack2x16float / bf16 = top half of an f32)');
  notes.push(has('shader-f16')
    ? 'f16 compute: activations stored as array<f16> (shader-f16; half the bytes), f32 math inside the kernels'
    : `f16 compute: activations stored as f32 words rounded to f16 (emulated: the adapter does not offer shader-f16${/nvidia/i.test(adapter.vendor) ? ', even with Dawn\'s vulkan_enable_f16_on_nvidia toggle: a newer NVIDIA driver may offer it' : ''}), f32 math inside the kernels`);
  if (has('subgroups')) notes.push('subgroups are offered (not used by the kernels yet)');
  notes.push(`largest storage binding ${fmtBytes(limits.maxStorageBufferBindingSize)}, largest buffer ${fmtBytes(limits.maxBufferSize)}`);
  if (software) notes.push('software adapter: correct, but slower than the CPU EP (use for tests)');
  return { adapter, software, features, limits, subgroupMatrixConfigs, gemm, notes };
}

export function fmtBytes(n: number): string {
  if (n >= 2 ** 30) return `${(n / 2 ** 30).toFixed(2)} GiB`;
  if (n >= 2 ** 20) return `${(n / 2 ** 20).toFixed(1)} MiB`;
  if (n >= 2 ** 10) return `${(n / 2 ** 10).toFixed(1)} KiB`;
  return `${n} B`;
}

/** The report as lines for logs and the CLI. */
export function describeGpu(r: GpuReport): string[] {
  const a = r.adapter;
  return [
    `GPU: ${[a.vendor, a.architecture, a.device, a.description].filter(Boolean).join(' / ') || 'unnamed adapter'}${r.software ? ' (software)' : ''}`,
    `GEMM: ${r.gemm.path} (${r.gemm.reason})`,
    ...r.notes,
  ];
}
