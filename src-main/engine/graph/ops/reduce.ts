/** Reductions over static axes; gradients broadcast back (keepdims handled once in `keep`). */
import type { Value } from '../graph';
import { def, num, ints, A, need, type Attrs, type GradCtx, type Grad } from './registry';
import { type Dim, normAxis } from '../types';

/** Reduction axes normalised and sorted; [] means all axes. */
function reduceAxes(v: Value, a: Attrs): number[] {
  const ax = ints(a, 'axes');
  const all = ax.length === 0 ? v.shape.map((_, i) => i) : ax.map((i) => normAxis(i, v.rank, 'reduce'));
  return [...new Set(all)].sort((p, q) => p - q);
}

/** Brings a reduced gradient/value back to rank of the input (keepdims=0 -> Unsqueeze). */
function keep(c: GradCtx, v: Value): Value {
  const x = c.x[0]!;
  if (num(c.node.attrs, 'keepdims') || v.rank === 0) return v;
  return c.g.unsqueeze(v, reduceAxes(x, c.node.attrs));
}

function defReduce(name: string, grad: (c: GradCtx, x: Value, yk: () => Value, gyk: Value) => Grad): void {
  def({
    name,
    infer: (x, a) => {
      const [v] = need(x, 1);
      const axes = reduceAxes(v!, a);
      const kd = num(a, 'keepdims');
      const shape: Dim[] = [];
      v!.shape.forEach((d, i) => {
        if (!axes.includes(i)) shape.push(d);
        else if (kd) shape.push(1);
      });
      return [{ dtype: v!.dtype, shape }];
    },
    lower: (c) => {
      const axes = reduceAxes(c.node.inputs[0]!, c.node.attrs);
      c.emit(name, [c.in(0), c.ints(axes)], [c.out(0)], { keepdims: A.i(num(c.node.attrs, 'keepdims')) });
    },
    grad: (c) => (c.gy[0] ? [grad(c, c.x[0]!, () => keep(c, c.y[0]!), keep(c, c.gy[0]))] : [null]),
  });
}

/** Count of elements reduced over, which must be static. */
function reducedCount(x: Value, a: Attrs): number {
  let n = 1;
  for (const i of reduceAxes(x, a)) {
    const d = x.shape[i]!;
    if (typeof d !== 'number') throw new Error(`ReduceMean gradient needs a fixed size on axis ${i}, got '${d}'.`);
    n *= d;
  }
  return n;
}

defReduce('ReduceSum', (c, x, _yk, gyk) => c.g.expand(gyk, x.shape, x));
defReduce('ReduceMean', (c, x, _yk, gyk) => c.g.expand(c.g.mul(gyk, 1 / reducedCount(x, c.node.attrs)), x.shape, x));
defReduce('ReduceMax', (c, x, yk, gyk) => c.g.where(c.g.equal(x, yk()), gyk, 0)); // ties: each max gets gy
defReduce('ReduceLogSumExp', (c, x, yk, gyk) => c.g.mul(c.g.exp(c.g.sub(x, yk())), gyk)); // softmax · gy
defReduce('ReduceSumSquare', (c, x, _yk, gyk) => c.g.mul(x, c.g.mul(gyk, 2)));
