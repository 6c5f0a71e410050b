/**
 * The gated MLP's activation (fused.ts SwiGLU / SwiGLUGrad): one thread per element, σ recomputed, in the
 * operation order of the decomposition (the elementwise kernels' σ), so the result is the unfused chain's.
 *   forward   h = (gate · σ(gate)) · up
 *   backward  dsilu = dh · up; dgate = dsilu · s + (dsilu · gate) · (s · (1 − s)); dup = dh · (gate · s)
 */
import { KernelBuilder } from '../wgsl';
import { dispatchPerElement, outShape, prod, type EmitCtx, type Emitter } from './context';

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

export const SWIGLU: Record<string, Emitter> = { SwiGLU: forward, SwiGLUGrad: backward };
