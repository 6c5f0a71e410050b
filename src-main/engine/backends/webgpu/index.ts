/** Lathe's own WebGPU backend on Dawn: IR graph -> WGSL kernels with a static buffer plan (docs/engine-webgpu.md). */
export { openGpu, closeGpu, describeGpu, capabilityReport, isSoftware, DAWN_TOGGLES, type GpuContext, type GpuReport, type GpuLimits } from './device';
export { planGraph, type Plan, type PlanOptions, type PlannedDispatch } from './plan';
export { GpuProgram, gpuWeightCache, type GpuProgramSpec, type GpuProgramOptions, type GpuProgramInfo, type StepExtra } from './program';
export { GpuSession } from './session';
export { KERNELS } from './kernels';
export { chooseGpuBackend, gpuUnsupported, hasGpuDevice, expectedDevice, type GpuBackendChoice } from './choose';
export { GpuTokenSampler, SAMPLE_WGSL, GPU_SAMPLE_AMBIGUOUS, GPU_SAMPLE_NONFINITE, type GpuDraw } from './sample';
