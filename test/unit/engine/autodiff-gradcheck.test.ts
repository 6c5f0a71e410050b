/**
 * Every gradient rule in the registry against central finite differences, on the CPU EP.
 * Method (JAX check_vjp style): random cotangent r on the outputs, so L(x) = Σ <y_k(x), r_k>;
 * for each input separately a random direction v: (L(x+εv) − L(x−εv)) / 2ε must equal <∂L/∂x, v>.
 * float64 where the CPU EP has the kernel (ε 1e-6), float32 otherwise (ε 1e-3, looser tolerance).
 * Inputs that sit near a kink (relu, abs, max/min ties) are generated away from it.
 */
import { describe, expect, it } from 'vitest';
import { GraphBuilder, type Value } from '../../../src-main/engine/graph/graph';
import { registeredOps } from '../../../src-main/engine/graph/ops';
import { CASES, type Case, gen } from './autodiff-cases';
import { gradients } from '../../../src-main/engine/autodiff/grad';
import { compile, type Feed, rng } from './autodiff-run';

async function check(c: Case, seed: number): Promise<{ maxRel: number; nodes: number }> {
  const dt = c.dtype ?? 'float64';
  const r = rng(seed);
  const g = new GraphBuilder();
  const xs = c.inputs.map((inp, i) => g.input(`x${i}`, inp.dtype ?? dt, inp.shape));
  const built = c.build(g, xs);
  const ys = Array.isArray(built) ? built : [built];
  const opNodes = g.nodes.filter((n) => n.op === c.op).length;
  if (c.op !== 'composite') expect(opNodes, `case for ${c.op} builds no ${c.op} node`).toBeGreaterThan(0);
  const cots = ys.map((y, k) => g.input(`r${k}`, y.dtype, y.shape));
  const wrt = xs.filter((x) => x.dtype === dt);
  const res = gradients(g, ys.map((y, k): [Value, Value] => [y, cots[k]!]), wrt);
  ys.forEach((y, k) => g.output(`y${k}`, y));
  res.grads.forEach((gv, k) => {
    if (!gv) throw new Error(`no gradient for input ${k}`);
    g.output(`g${k}`, gv);
  });
  const s = await compile(g, 'disabled');
  const feeds: Record<string, Feed> = {};
  c.inputs.forEach((inp, i) => (feeds[`x${i}`] = { dtype: inp.dtype ?? dt, shape: inp.shape, data: gen(r, inp) }));
  ys.forEach((y, k) => (feeds[`r${k}`] = { dtype: y.dtype, shape: y.shape as number[], data: gen(r, { shape: y.shape as number[] }) }));
  const L = async (fd: Record<string, Feed>): Promise<number> => {
    const out = await s.run(fd);
    let sum = 0;
    ys.forEach((_, k) => out[`y${k}`]!.forEach((v, j) => (sum += v * Number(feeds[`r${k}`]!.data[j]))));
    return sum;
  };
  const base = await s.run(feeds);
  const eps = dt === 'float64' ? 1e-6 : 1e-3;
  const rtol = dt === 'float64' ? 1e-6 : 2e-2;
  let maxRel = 0;
  let wi = 0;
  for (let i = 0; i < c.inputs.length; i++) {
    if (feeds[`x${i}`]!.dtype !== dt) continue;
    const gk = base[`g${wi++}`]!;
    const x0 = Array.from(feeds[`x${i}`]!.data);
    const v = x0.map(() => r() * 2 - 1);
    const analytic = gk.reduce((acc, gv, j) => acc + gv * v[j]!, 0);
    // magnitude of the terms summed: a dot product that cancels is judged against it
    const magnitude = gk.reduce((acc, gv, j) => acc + Math.abs(gv * v[j]!), 0);
    const shifted = (sgn: number): Record<string, Feed> => ({
      ...feeds, [`x${i}`]: { ...feeds[`x${i}`]!, data: x0.map((x, j) => x + sgn * eps * v[j]!) },
    });
    const numeric = ((await L(shifted(1))) - (await L(shifted(-1)))) / (2 * eps);
    const rel = Math.abs(analytic - numeric) / Math.max(Math.abs(numeric), Math.abs(analytic), magnitude, 1e-3);
    maxRel = Math.max(maxRel, rel);
    expect(magnitude, `gradient of input ${i} is zero: the check proves nothing`).toBeGreaterThan(1e-6);
    expect(rel, `input x${i}: analytic ${analytic} vs finite difference ${numeric} (seed ${seed})`).toBeLessThan(rtol);
  }
  await s.release();
  return { maxRel, nodes: res.backwardNodes };
}

describe('gradient rules vs central finite differences (CPU EP)', () => {
  const seed = Number(process.env.GRADCHECK_SEED ?? 1234);
  CASES.forEach((c, k) => {
    if (c.gpuOnly) return;
    it(`${c.op}${c.label ? ` (${c.label})` : ''} [${c.dtype ?? 'float64'}]`, async () => {
      try {
        const { maxRel, nodes } = await check(c, seed + k);
        console.log(`gradcheck ${c.op}${c.label ? ` (${c.label})` : ''}: max rel err ${maxRel.toExponential(2)}, ${nodes} backward nodes`);
      } catch (e) {
        throw new Error(`${(e as Error).message}\n  replay with GRADCHECK_SEED=${seed} (case seed ${seed + k})`);
      }
    });
  });

  it('covers every op that has a gradient rule', () => {
    const covered = new Set(CASES.map((c) => c.op));
    const missing = registeredOps().filter((d) => d.grad && !covered.has(d.name)).map((d) => d.name);
    expect(missing, `ops with a gradient rule but no finite-difference case: ${missing.join(', ')}`).toEqual([]);
    const undefinedRule = registeredOps().filter((d) => !d.grad && !d.nondiff).map((d) => d.name);
    expect(undefinedRule, 'ops neither differentiable nor marked nondiff').toEqual([]);
  });
});
