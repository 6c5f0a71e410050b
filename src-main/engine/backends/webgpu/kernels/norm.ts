/**
 * The norms' backward in two dispatches (fused.ts RMSNormGrad, LayerNormGrad):
 *  1. one 64-thread workgroup per row: the row statistics (r = 1/rms or μ and r = 1/std), the two row
 *     means of the gradient formula, dx for every element, and the statistics saved for step 2;
 *  2. one thread per column d (only when dscale/dbias are wanted): Σ over rows of gy·x̂ (and gy).
 * Rows are the tensor's leading dims, D its last one.
 */
import { num } from '../../../graph/ops/registry';
import { KernelBuilder, grid, lit, roundHalf } from '../wgsl';
import { ENTRY, dispatchPerElement, inShape, prod, type EmitCtx, type Emitter } from './context';

const WG = 64;

/** Statements `let <name> = Σ_{j < D} <term(j)>` over the row (element index `base + j`), workgroup-reduced. */
function rowSum(name: string, term: (e: string, j: string) => string): string {
  return `var ${name}_a = 0.0;
  for (var j = li; j < D; j = j + ${WG}u) { let e = base + j; ${name}_a = ${name}_a + ${term('e', 'j')}; }
  sh[li] = ${name}_a;
  workgroupBarrier();
  for (var s = ${WG / 2}u; s > 0u; s = s >> 1u) {
    if (li < s) { sh[li] = sh[li] + sh[li + s]; }
    workgroupBarrier();
  }
  let ${name} = sh[0];
  workgroupBarrier();`;
}

function rowDispatch(c: EmitCtx, k: KernelBuilder, rows: number, D: number, stmts: string): void {
  const { groups, x } = grid(rows, 1);
  k.decl(`var<workgroup> sh: array<f32, ${WG}>;`);
  c.dispatch(k, `${ENTRY}(${WG}) fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let o = wid.y * ${x}u + wid.x;
  if (o >= ${rows}u) { return; }
  let D = ${D}u;
  let base = o * D;
  ${stmts}
}`, groups);
}

function normGrad(centered: boolean): Emitter {
  return (c) => {
    const s = inShape(c, 0);
    const D = s[s.length - 1]!, rows = prod(s) / D;
    const eps = lit(num(c.node.attrs, 'epsilon'));
    const nOut = centered ? 3 : 2; // dx, dscale(, dbias)
    const wantCols = c.used(1) || (centered && c.used(2));
    const stat = (i: number) => c.used(i) || wantCols;
    // 1. per row: statistics and dx
    const k = new KernelBuilder(centered ? 'LayerNormGrad' : 'RMSNormGrad');
    const ldx = k.input(c.in(0)), lds = k.input(c.in(1)), ldg = k.input(c.in(2));
    const stx = c.used(0) ? k.output(c.out(0)) : null;
    const lda = c.accumulate ? k.input(c.accumulate) : null; // the residual stream's other gradient, added in the store
    // (a 16-bit dx rounded to the compute type before the sum, as its own store would round it: the unfused Add's numbers)
    const rdx = lda && c.node.outputs[0]!.dtype === 'float16' ? roundHalf() : null;
    if (rdx) k.decl(rdx.decl);
    const dxOf = (v: string) => (rdx ? `${rdx.fn}(${v})` : v);
    const stMu = centered && stat(nOut) ? k.output(c.out(nOut)) : null;
    const stR = stat(nOut + (centered ? 1 : 0)) ? k.output(c.out(nOut + (centered ? 1 : 0))) : null;
    const mu = centered ? 'mu' : '0.0';
    rowDispatch(c, k, rows, D, `${centered ? `${rowSum('t', (e) => `${ldx}(${e})`)}
  let mu = t / ${lit(D)};` : ''}
  ${rowSum('v', (e) => `(${ldx}(${e}) - ${mu}) * (${ldx}(${e}) - ${mu})`)}
  let r = inverseSqrt(v / ${lit(D)} + ${eps});
  ${centered ? rowSum('m1', (e, j) => `${ldg}(${e}) * ${lds}(${j})`) : ''}
  ${rowSum('m2', (e, j) => `${ldg}(${e}) * ${lds}(${j}) * (${ldx}(${e}) - ${mu}) * r`)}
  if (li == 0u) { ${stMu ? `${stMu}(o, mu);` : ''} ${stR ? `${stR}(o, r);` : ''} }
  ${stx ? `for (var j = li; j < D; j = j + ${WG}u) {
    let e = base + j;
    // dx = r (gx̂ − ${centered ? 'mean(gx̂) − ' : ''}x̂ · mean(gx̂ ⊙ x̂)),  gx̂ = gy ⊙ scale
    ${stx}(e, ${lda ? `${lda}(e) + ` : ''}${dxOf(`r * (${ldg}(e) * ${lds}(j)${centered ? ' - m1 / f32(D)' : ''} - (${ldx}(e) - ${mu}) * r * m2 / f32(D))`)});
  }` : ''}`);
    if (!wantCols) return;
    // 2. per column: dscale[d] = Σ_rows gy · x̂ (dbias[d] = Σ_rows gy)
    const k2 = new KernelBuilder(centered ? 'LayerNormGradCols' : 'RMSNormGradCols');
    const ldx2 = k2.input(c.in(0)), ldg2 = k2.input(c.in(2));
    const ldMu = stMu ? k2.input(c.out(nOut)) : null;
    const ldR = k2.input(c.out(nOut + (centered ? 1 : 0)));
    const sts = c.used(1) ? k2.output(c.out(1)) : null;
    const stb = centered && c.used(2) ? k2.output(c.out(2)) : null;
    dispatchPerElement(c, k2, D, `  var a = 0.0;
  var b = 0.0;
  for (var row = 0u; row < ${rows}u; row = row + 1u) {
    let e = row * ${D}u + i;
    let gy = ${ldg2}(e);
    a = a + gy * (${ldx2}(e)${ldMu ? ` - ${ldMu}(row)` : ''}) * ${ldR}(row);
    b = b + gy;
  }
  ${sts ? `${sts}(i, a);` : ''}
  ${stb ? `${stb}(i, b);` : ''}`);
  };
}

export const NORM: Record<string, Emitter> = {
  RMSNormGrad: normGrad(false),
  LayerNormGrad: normGrad(true),
};
