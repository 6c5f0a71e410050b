/** Elementwise ops (broadcasting binary, unary, comparisons, Where, Cast, Pow, Gelu). */
import type { Value } from '../graph';
import { def, num, A, need, floatIn, sameType, plain, ONNX_TYPE_CODE, type GradCtx, type Grad } from './registry';
import { type DType, broadcastShapes, isFloat } from '../types';

function defUnary(name: string, grad: (c: GradCtx, x: Value, y: Value, gy: Value) => Grad, floatOnly = true): void {
  def({
    name,
    infer: (x) => {
      const [v] = need(x, 1);
      if (floatOnly) floatIn(v!);
      return [{ dtype: v!.dtype, shape: [...v!.shape] }];
    },
    lower: plain(name),
    grad: (c) => [c.gy[0] ? grad(c, c.x[0]!, c.y[0]!, c.gy[0]) : null],
  });
}

function defBinary(name: string, grad: ((c: GradCtx, a: Value, b: Value, gy: Value) => [Grad, Grad]) | null): void {
  def({
    name,
    infer: (x) => {
      const [a, b] = need(x, 2);
      return [{ dtype: sameType([a!, b!]), shape: broadcastShapes(a!.shape, b!.shape, name) }];
    },
    lower: plain(name),
    ...(grad ? { grad: (c: GradCtx) => (c.gy[0] ? grad(c, c.x[0]!, c.x[1]!, c.gy[0]) : [null, null]) } : { nondiff: true }),
  });
}

function defCompare(name: string, arity = 2): void {
  def({
    name,
    infer: (x) => {
      const v = need(x, arity);
      if (arity === 1 && v[0]!.dtype !== 'bool') throw new Error(`expected bool, got ${v[0]!.dtype}`);
      const shape = arity === 2 ? broadcastShapes(v[0]!.shape, v[1]!.shape, name) : [...v[0]!.shape];
      if (arity === 2) sameType(v);
      return [{ dtype: 'bool', shape }];
    },
    lower: plain(name),
    nondiff: true,
  });
}

defBinary('Add', (_c, _a, _b, gy) => [gy, gy]);
defBinary('Sub', (c, _a, _b, gy) => [gy, c.needs(1) ? c.g.neg(gy) : null]);
defBinary('Mul', (c, a, b, gy) => [c.needs(0) ? c.g.mul(gy, b) : null, c.needs(1) ? c.g.mul(gy, a) : null]);
defBinary('Div', (c, _a, b, gy) => {
  // y = a / b:  da = gy / b,  db = -da * y
  const da = c.g.div(gy, b);
  return [da, c.needs(1) ? c.g.neg(c.g.mul(da, c.y[0]!)) : null];
});
// Ties (a == b) send the gradient to one side; inputs in checks are kept apart.
defBinary('Max', (c, a, b, gy) => {
  const bWins = c.g.less(a, b);
  return [c.needs(0) ? c.g.where(bWins, 0, gy) : null, c.needs(1) ? c.g.where(bWins, gy, 0) : null];
});
defBinary('Min', (c, a, b, gy) => {
  const bWins = c.g.greater(a, b);
  return [c.needs(0) ? c.g.where(bWins, 0, gy) : null, c.needs(1) ? c.g.where(bWins, gy, 0) : null];
});

defUnary('Neg', (c, _x, _y, gy) => c.g.neg(gy), false);
defUnary('Identity', (_c, _x, _y, gy) => gy, false);
defUnary('Exp', (c, _x, y, gy) => c.g.mul(gy, y));
defUnary('Log', (c, x, _y, gy) => c.g.div(gy, x));
defUnary('Sqrt', (c, _x, y, gy) => c.g.div(gy, c.g.mul(y, 2))); // d sqrt(x) = 1 / (2 sqrt(x))
defUnary('Reciprocal', (c, _x, y, gy) => c.g.neg(c.g.mul(gy, c.g.mul(y, y)))); // d(1/x) = -1/x²
defUnary('Tanh', (c, _x, y, gy) => c.g.mul(gy, c.g.sub(1, c.g.mul(y, y))));
defUnary('Sigmoid', (c, _x, y, gy) => c.g.mul(gy, c.g.mul(y, c.g.sub(1, y))));
// d softplus(x) = σ(x); no kink at 0 (a max/abs composite would send the gradient to one side there)
defUnary('Softplus', (c, x, _y, gy) => c.g.mul(gy, c.g.sigmoid(x)));
defUnary('Erf', (c, x, _y, gy) => {
  // d erf(x) = 2/sqrt(pi) * exp(-x²)
  const e = c.g.exp(c.g.mul(x, c.g.neg(x)));
  return c.g.mul(c.g.mul(gy, 2 / Math.sqrt(Math.PI)), e);
});
defUnary('Relu', (c, x, _y, gy) => c.g.where(c.g.greater(x, 0), gy, 0));
defUnary('Abs', (c, x, _y, gy) => c.g.where(c.g.less(x, 0), c.g.neg(gy), gy));

def({
  name: 'Pow', // x ** exponent, exponent a build-time constant
  infer: (x) => {
    const [v] = need(x, 1);
    floatIn(v!);
    return [{ dtype: v!.dtype, shape: [...v!.shape] }];
  },
  lower: (c) => c.emit('Pow', [c.in(0), c.scalar(num(c.node.attrs, 'exponent'), c.node.inputs[0]!.dtype)], [c.out(0)]),
  grad: (c) => {
    const [x] = c.x as Value[];
    const gy = c.gy[0];
    if (!gy) return [null];
    const p = num(c.node.attrs, 'exponent');
    if (p === 0) return [null];
    // d x^p = p x^(p-1)
    const dp = p === 1 ? null : p === 2 ? x! : c.g.pow(x!, p - 1);
    return [dp ? c.g.mul(c.g.mul(gy, p), dp) : c.g.mul(gy, p)];
  },
});

def({
  name: 'Gelu', // opset 20; approximate 'none' (erf) or 'tanh'
  infer: (x) => {
    const [v] = need(x, 1);
    floatIn(v!);
    return [{ dtype: v!.dtype, shape: [...v!.shape] }];
  },
  lower: plain('Gelu', (a) => ({ approximate: A.s(a.approximate as string) })),
  grad: (c) => {
    const { g } = c;
    const x = c.x[0]!;
    const gy = c.gy[0];
    if (!gy) return [null];
    if (c.node.attrs.approximate === 'tanh') {
      // y = 0.5 x (1 + tanh(u)),  u = k (x + 0.044715 x³),  k = sqrt(2/pi)
      // dy = 0.5 (1 + t) + 0.5 x (1 - t²) k (1 + 3·0.044715 x²)
      const k = Math.sqrt(2 / Math.PI);
      const x2 = g.mul(x, x);
      const t = g.tanh(g.mul(g.mul(x, g.add(g.mul(x2, 0.044715), 1)), k));
      const du = g.mul(g.add(g.mul(x2, 3 * 0.044715 * k), k), g.mul(x, 0.5));
      const d = g.add(g.mul(g.add(t, 1), 0.5), g.mul(du, g.sub(1, g.mul(t, t))));
      return [g.mul(gy, d)];
    }
    // y = x Φ(x):  dy = Φ(x) + x φ(x),  Φ = 0.5 (1 + erf(x/√2)),  φ = exp(-x²/2)/√(2π)
    const cdf = g.add(g.mul(g.erf(g.mul(x, Math.SQRT1_2)), 0.5), 0.5);
    const pdf = g.exp(g.mul(g.mul(x, x), -0.5));
    const d = g.add(cdf, g.mul(g.mul(x, 1 / Math.sqrt(2 * Math.PI)), pdf));
    return [g.mul(gy, d)];
  },
});

def({
  name: 'Cast',
  infer: (x, a) => [{ dtype: a.to as DType, shape: [...need(x, 1)[0]!.shape] }],
  lower: (c) => c.emit('Cast', [c.in(0)], [c.out(0)], { to: A.i(ONNX_TYPE_CODE[c.node.attrs.to as DType]) }),
  grad: (c) => {
    const x = c.x[0]!;
    return [c.gy[0] && isFloat(x.dtype) && isFloat(c.y[0]!.dtype) ? c.g.cast(c.gy[0], x.dtype) : null];
  },
});

def({
  name: 'Where', // cond ? a : b
  infer: (x) => {
    const [cond, a, b] = need(x, 3);
    if (cond!.dtype !== 'bool') throw new Error(`condition must be bool, got ${cond!.dtype}`);
    const shape = broadcastShapes(broadcastShapes(cond!.shape, a!.shape, 'Where'), b!.shape, 'Where');
    return [{ dtype: sameType([a!, b!]), shape }];
  },
  lower: plain('Where'),
  grad: (c) => {
    const gy = c.gy[0];
    if (!gy) return [null, null, null];
    const cond = c.x[0]!;
    return [null, c.needs(1) ? c.g.where(cond, gy, 0) : null, c.needs(2) ? c.g.where(cond, 0, gy) : null];
  },
});

defCompare('Equal');
defCompare('Less');
defCompare('Greater');
defCompare('Not', 1);
