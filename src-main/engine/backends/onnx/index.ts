/** The ONNX backend: IR -> ONNX lowering, onnxruntime sessions, EP choice, GPU-resident programs, the engine thread. */
export { selectEp, probeEp, parseEpOverride, resetEpProbes, type EpChoice, type EpAttempt, type SelectEpOptions } from './ep';
export { ensureXdgRuntimeDir } from '../../runtime/env';
export { reportPlacement, describeFallback, type PlacementReport, type FallbackNode } from './placement';
export { Program, identityModel, type ProgramSpec, type ProgramInfo, type StateSlot } from './program';
export { EngineSession, runModel, countNodes, type EngineSessionOptions, type EpName, type OptLevel } from './session';
export { hostTensor, toNumbers, type HostTensor, type HostData } from '../../runtime/tensor';
export { EngineWorker, ProgramHandle, type EngineWorkerOptions } from './worker';
