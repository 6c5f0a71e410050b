/**
 * The gated MLP's activation (fused.ts SwiGLU / SwiGLUGrad): one thread per element, σ recomputed, in the
 * operation order of the decomposition (the elementwise kernels' σ), so the result is the unfused chain's.
 *   forward   h = (gate · σ(gate)) · up
 *   backward  dsilu = dh · up; dgate = dsilu · s + (dsilu · gate) · (s · (1 − s)); dup = dh · (gate · s)
 */
import { KernelBuilder, roundHalf, type Ref } from '../wgsl';
import { dispatchPerElement, outShape, prod, type EmitCtx, type Emitter, type GemmEpilogue } from './context';
import type { Source } from './elementwise';

const sigmoid = (x: string) => `(1.0 / (1.0 + exp(-${x})))`;

function forward(c: EmitCtx): void {
  const k = new KernelBuilder('SwiGLU');
  const lg = k.input(c.in(0)), lu = k.input(c.in(1));
  const st = k.output(c.out(0));
  dispatchPerElement(c, k, prod(outShape(c)), `  let x = ${lg}(i);
  let s = ${sigmoid('x')};
  ${st}(i, (x * s) * ${lu}(i));`);
}

function backward(c: EmitCtx): void {
  const k = new KernelBuilder('SwiGLUGrad');
  const lg = k.input(c.in(0)), lu = k.input(c.in(1)), lh = k.input(c.in(2));
  const sg = c.used(0) ? k.output(c.out(0)) : null;
  const su = c.used(1) ? k.output(c.out(1)) : null;
  dispatchPerElement(c, k, prod(outShape(c)), `  let x = ${lg}(i);
  let s = ${sigmoid('x')};
  let dh = ${lh}(i);
  let dsilu = dh * ${lu}(i);
  ${sg ? `${sg}(i, dsilu * s + (dsilu * x) * (s * (1.0 - s)));` : ''}
  ${su ? `${su}(i, dh * (x * s));` : ''}`);
}

/**
 * A WGSL function `name(e: u32) -> f32`: element e of SwiGLU(gate, up) computed where it is loaded (plan.ts
 * foldedLoads: h has only GEMM readers, each recomputes it from gate and up in its tile load; h is never
 * stored). The forward kernel's expression, so each reader loads exactly the value the kernel would store;
 * a 16-bit h (`half`: f16/bf16 compute) is rounded as the kernel's 16-bit store rounds it.
 */
export function swigluLoad(gate: Source, up: Source, name: string, half: boolean): (k: KernelBuilder) => string {
  const r = half ? roundHalf() : null; // (taken while the plan is made: bf16 compute rounds to bf16)
  return (k) => {
    const ld = (s: Source) => (typeof s === 'function' ? s(k) : k.input(s));
    const lg = ld(gate), lu = ld(up);
    if (r) k.decl(r.decl);
    const h = `(x * s) * ${lu}(e)`;
    k.decl(`fn ${name}(e: u32) -> f32 { let x = ${lg}(e); let s = ${sigmoid('x')}; return ${r ? `${r.fn}(${h})` : h}; }`);
    return name;
  };
}

/**
 * SwiGLUGrad computed in the store of the GEMM that produces dh (plan.ts swigluGradEpilogues): the GEMM's
 * result is dh (never stored; a 16-bit dh rounded as its store would round it), and each thread writes dgate
 * and dup of its element with the backward kernel's expressions, reading gate and up: the same values as the
 * GEMM's dh followed by the SwiGLUGrad dispatch. `out(i)` / `used(i)` are the SwiGLUGrad node's outputs.
 */
export function swigluGradEpilogue(gate: Source, up: Source, half: boolean, out: (i: number) => Ref, used: (i: number) => boolean): GemmEpilogue {
  const r = half ? roundHalf() : null;
  return {
    name: 'SwiGLUGrad',
    store: (k) => {
      const ld = (s: Source) => (typeof s === 'function' ? s(k) : k.input(s));
      const lg = ld(gate), lu = ld(up);
      if (r) k.decl(r.decl);
      const sg = used(0) ? k.output(out(0)) : null;
      const su = used(1) ? k.output(out(1)) : null;
      return (idx, value) => `{ let ep_e = ${idx}; let x = ${lg}(ep_e); let s = ${sigmoid('x')}; let dh = ${r ? `${r.fn}(${value})` : value}; let dsilu = dh * ${lu}(ep_e);${
        sg ? ` ${sg}(ep_e, dsilu * s + (dsilu * x) * (s * (1.0 - s)));` : ''}${su ? ` ${su}(ep_e, dh * (x * s));` : ''} }`;
    },
  };
}

export const SWIGLU: Record<string, Emitter> = { SwiGLU: forward, SwiGLUGrad: backward };
