/**
 * Paged optimizer states: AdamW's m and v kept in host memory and moved through the device once per
 * step, instead of living on it as Program state slots. The train graph is unchanged (m and v are
 * its inputs, m_out and v_out its outputs); only the Program spec differs: m and v become per-step
 * feeds and m_out/v_out fetches, so the GPU holds them only while a step runs (and the EP's copies
 * in and out cost step time: test/bench/memory.ts measures it).
 *
 * Dimension letters: P LoRA parameters (m, v are f32 [P]).
 */
import type { ProgramSpec } from '../backends/onnx/program';
import type { StateSlot } from '../runtime/tensor';
import { hostTensor, toNumbers, type HostTensor } from '../runtime/tensor';

/** Train-graph slots that page: input name -> output name. */
const PAGED = [['m', 'm_out'], ['v', 'v_out']] as const;

/** A ProgramSpec with m and v taken out of the state and fetched instead. */
export function pagedProgramSpec(spec: ProgramSpec): ProgramSpec {
  const { state, fetch } = pagedSlots(spec);
  return { model: spec.model, state, fetch };
}

/**
 * The state and fetch lists of a paged program, for either backend (a GpuProgramSpec takes them beside its
 * graph): m and v out of the state, m_out and v_out fetched; `hostInputs`: m and v, which the GPU backend
 * keeps in host (mappable) buffers and copies into its buffer pool just before the optimizer reads them.
 */
export function pagedSlots(spec: { state: StateSlot[]; fetch: string[] }): { state: StateSlot[]; fetch: string[]; hostInputs: string[] } {
  for (const [i] of PAGED) {
    if (!spec.state.some((s) => s.input === i)) throw new Error(`pagedProgramSpec: the program has no "${i}" state slot (state: ${spec.state.map((s) => s.name).join(', ')}).`);
  }
  const paged = new Set<string>(PAGED.map(([i]) => i));
  return {
    state: spec.state.filter((s) => !paged.has(s.input)),
    fetch: [...spec.fetch, ...PAGED.map(([, o]) => o)],
    hostInputs: PAGED.map(([i]) => i),
  };
}

/** The host copies of m and v: feed them to each step, take the step's outputs back. */
export class PagedMoments {
  m: Float32Array;
  v: Float32Array;
  constructor(readonly size: number) {
    this.m = new Float32Array(size);
    this.v = new Float32Array(size);
  }

  /** Feeds for the next step. */
  feeds(): Record<string, HostTensor> {
    return { m: hostTensor('float32', [this.size], this.m), v: hostTensor('float32', [this.size], this.v) };
  }

  /** Keeps the step's new moments; returns the other fetched outputs. */
  take(out: Record<string, HostTensor>): Record<string, HostTensor> {
    const rest = { ...out };
    for (const [i, o] of PAGED) {
      const t = out[o];
      if (!t) throw new Error(`PagedMoments: the step did not return ${o}.`);
      const a = t.data instanceof Float32Array ? t.data : Float32Array.from(toNumbers(t));
      if (a.length !== this.size) throw new Error(`PagedMoments: ${o} has ${a.length} values, expected ${this.size}.`);
      this[i] = a;
      delete rest[o];
    }
    return rest;
  }

  /** Restore from a checkpoint's moments. */
  load(m: Float32Array, v: Float32Array): void {
    if (m.length !== this.size || v.length !== this.size) throw new Error(`PagedMoments.load: got ${m.length}/${v.length} values, expected ${this.size}.`);
    this.m = m.slice();
    this.v = v.slice();
  }
}
