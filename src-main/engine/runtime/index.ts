/** The engine runtime: EP choice, sessions, GPU-resident programs, and the engine thread. */
export { selectEp, probeEp, parseEpOverride, resetEpProbes, type EpChoice, type EpAttempt, type SelectEpOptions } from './ep';
export { ensureXdgRuntimeDir } from './env';
export { reportPlacement, describeFallback, type PlacementReport, type FallbackNode } from './placement';
export { Program, identityModel, type ProgramSpec, type ProgramInfo, type StateSlot } from './program';
export { EngineSession, runModel, countNodes, type EngineSessionOptions, type EpName, type OptLevel } from './session';
export { hostTensor, toNumbers, type HostTensor, type HostData } from './tensor';
export { EngineWorker, ProgramHandle, type EngineWorkerOptions } from './worker';
