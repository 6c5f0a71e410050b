/**
 * Messages between the EngineWorker (caller side) and the engine thread (worker-main.ts).
 * Everything here is structured-clone safe: plain objects, typed arrays.
 */
import type { OnnxModel } from '../../onnx/spec';
import type { EpChoice, SelectEpOptions } from './ep';
import type { PlacementReport } from './placement';
import type { ProgramInfo, ProgramSpec } from './program';
import type { EngineSessionOptions, EpName } from './session';
import type { HostTensor } from '../../runtime/tensor';

export type Feeds = Record<string, HostTensor>;

/** method name -> [arguments, result] */
export interface EngineMethods {
  selectEp: [[opts: SelectEpOptions], EpChoice];
  runModel: [[model: OnnxModel, feeds: Feeds, opts: EngineSessionOptions], Feeds];
  reportPlacement: [[model: OnnxModel, opts: EngineSessionOptions & { ep: EpName }], PlacementReport];
  createProgram: [[spec: ProgramSpec, opts: EngineSessionOptions], { handle: number; info: ProgramInfo }];
  programInit: [[handle: number, values: Feeds], void];
  programStep: [[handle: number, feeds: Feeds], Feeds];
  /** Several steps in one message; returns each step's fetched outputs. */
  programSteps: [[handle: number, feeds: Feeds[]], Feeds[]];
  programRead: [[handle: number, names: string[] | undefined], Feeds];
  programDispose: [[handle: number], void];
  /** Disposes every program; the worker can then be terminated. */
  shutdown: [[], void];
}

export type MethodName = keyof EngineMethods;

export interface EngineRequest<M extends MethodName = MethodName> {
  id: number;
  method: M;
  args: EngineMethods[M][0];
}

export interface SerializedError {
  name: string;
  message: string;
  code?: string;
  hint?: string;
  stack?: string;
}

export type EngineResponse =
  | { id: number; ok: true; result: unknown }
  | { id: number; ok: false; error: SerializedError };

/** Unsolicited message from the engine thread (no id): a log line for the caller's WorkOptions.onLog. */
export interface EngineLog {
  log: 'info' | 'warn' | 'error';
  message: string;
}
