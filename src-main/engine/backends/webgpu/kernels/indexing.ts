/**
 * Indexing kernels: Gather (embedding rows, any axis), GatherElements, ScatterElements with add
 * (written as a gather: each output element sums the updates aimed at it, so it needs no float atomics
 * and is deterministic), and HashUniform (LoRA dropout's random source).
 */
import { num } from '../../../graph/ops/registry';
import { normAxis } from '../../../graph/types';
import { KernelBuilder, affine, coords, stridesOf } from '../wgsl';
import { dispatchPerElement, inShape, outShape, prod, type Emitter } from './context';
import { mapKernel } from './elementwise';


/** A negative index counts from the end (ONNX). */
const wrap = (v: string, d: number) => `u32(select(${v}, ${v} + ${d}i, ${v} < 0i))`;

export const INDEXING: Record<string, Emitter> = {
  Gather: (c) => {
    // out[pre, idx..., post] = data[pre, indices[idx...], post]
    const ds = inShape(c, 0), is = inShape(c, 1), os = outShape(c);
    const ax = normAxis(num(c.node.attrs, 'axis'), ds.length, 'Gather');
    const dst = stridesOf(ds);
    const ir = is.length;
    const idxStr = stridesOf(is);
    const idx = affine(is.map((_, k) => idxStr[k]!), 0, 'c').replace(/c(\d+)/g, (_, k: string) => `c${Number(k) + ax}`);
    const pre = ds.slice(0, ax).map((_, k) => (dst[k] ? `c${k} * ${dst[k]}u` : '')).filter(Boolean);
    const post = ds.slice(ax + 1).map((_, j) => `c${ax + ir + j} * ${dst[ax + 1 + j]}u`);
    const k = new KernelBuilder('Gather');
    const ldd = k.input(c.in(0)), ldi = k.input(c.in(1));
    const st = k.output(c.out(0));
    const n = prod(os);
    dispatchPerElement(c, k, n, `  ${coords('i', os)}
  let row = ${wrap(`${ldi}(${ir ? idx : '0u'})`, ds[ax]!)};
  ${st}(i, ${ldd}(${[...pre, `row * ${dst[ax]}u`, ...post].join(' + ')}));`);
  },
  GatherElements: (c) => {
    // out[c] = data[c with c_axis = indices[c]]
    const ds = inShape(c, 0), os = outShape(c);
    const ax = normAxis(num(c.node.attrs, 'axis'), ds.length, 'GatherElements');
    const dst = stridesOf(ds);
    const rest = affine(dst.map((s, k) => (k === ax ? 0 : s)));
    const k = new KernelBuilder('GatherElements');
    const ldd = k.input(c.in(0)), ldi = k.input(c.in(1));
    const st = k.output(c.out(0));
    const n = prod(os);
    dispatchPerElement(c, k, n, `  ${coords('i', os)}
  let j = ${wrap(`${ldi}(i)`, ds[ax]!)};
  ${st}(i, ${ldd}(${rest} + j * ${dst[ax]}u));`);
  },
  ScatterElements: (c) => {
    // out[c] = data[c] + Σ_j { updates[c'] : c' = c with c'_axis = j, c' inside indices, indices[c'] = c_axis }
    const ds = inShape(c, 0), is = inShape(c, 1);
    const ax = normAxis(num(c.node.attrs, 'axis'), ds.length, 'ScatterElements');
    const ist = stridesOf(is);
    const inside = is.map((d, k) => (k === ax ? '' : `c${k} < ${d}u`)).filter(Boolean).join(' && ') || 'true';
    const at = affine(ist.map((s, k) => (k === ax ? 0 : s)));
    const k = new KernelBuilder('ScatterElementsAdd');
    const ldd = k.input(c.in(0)), ldi = k.input(c.in(1)), ldu = k.input(c.in(2));
    const st = k.output(c.out(0));
    const n = prod(ds);
    dispatchPerElement(c, k, n, `  ${coords('i', ds)}
  var acc = ${ldd}(i);
  if (${inside}) {
    let b = ${at};
    let J = ${k.param(is[ax]!)};
    for (var j = 0u; j < J; j = j + 1u) {
      let e = b + j * ${ist[ax]}u;
      if (${wrap(`${ldi}(e)`, ds[ax]!)} == c${ax}) { acc = acc + ${ldu}(e); }
    }
  }
  ${st}(i, acc);`);
  },
  RotaryEmbedding: (c) => {
    // x [B, N, S, H], positions [B, S], cos/sin [P, H/2]; rotate-half pairs (d, d + H/2) or interleaved (2d, 2d + 1)
    const [B, N, S, H] = inShape(c, 0) as [number, number, number, number];
    const half = H / 2;
    const inter = !!num(c.node.attrs, 'interleaved');
    const k = new KernelBuilder('RotaryEmbedding');
    const ldx = k.input(c.in(0)), ldp = k.input(c.in(1)), ldc = k.input(c.in(2)), lds = k.input(c.in(3));
    const st = k.output(c.out(0));
    const n = B * N * S * H;
    const [j, first, mate] = inter
      ? ['h / 2u', 'h % 2u == 0u', 'select(i - 1u, i + 1u, h % 2u == 0u)']
      : [`h % ${half}u`, `h < ${half}u`, `select(i - ${half}u, i + ${half}u, h < ${half}u)`];
    dispatchPerElement(c, k, n, `  ${coords('i', [B, N, S, H])}
  let h = c3;
  let p = u32(${ldp}(c0 * ${S}u + c2));
  let j = ${j};
  let cs = ${ldc}(p * ${half}u + j);
  let sn = ${lds}(p * ${half}u + j);
  let other = ${ldx}(${mate});
  ${st}(i, ${ldx}(i) * cs + select(other * sn, -other * sn, ${first}));`);
  },
  HashUniform: (c) => {
    // u = frac(sin(row·a + col·b + seed) · k), as llm/dropout.ts lowers it (masks differ from the CPU's by sin's rounding)
    const os = outShape(c);
    mapKernel(c, 'HashUniform', os, [
      { ref: c.in(0), strides: [1, 0] }, { ref: c.in(1), strides: [0, 1] }, { ref: c.in(2), strides: [0, 0] },
    ], ([r, col, s]) => `fract(sin(${r} * 12.9898 + ${col} * 78.233 + ${s}) * 43758.5453)`, c.out(0));
  },
};
