/** Shape ops: Reshape, Transpose, Concat, Split, Slice, Pad, Squeeze, Unsqueeze, Expand, Trilu. */
import type { GraphBuilder, Value } from '../graph';
import { divProd, prodOf, prodToDim } from '../dims';
import { def, num, ints, A, need, sameType, plain, type LowerCtx } from './registry';
import { type Dim, broadcastShapes, normAxis, shapeStr } from '../types';

/** Right-aligned shape for an ONNX shape input (Expand): 1 where x already has the dim, else the size. */
function expandShapeInput(c: LowerCtx, x: Value, target: readonly Dim[], like: Value | null): string {
  const off = target.length - x.rank;
  const dims: number[] = [];
  let needRuntime = false;
  target.forEach((d, i) => {
    const xd = i - off >= 0 ? x.shape[i - off] : 1;
    if (typeof d === 'number') dims.push(d);
    else if (xd === d) dims.push(1);
    else needRuntime = true;
  });
  if (!needRuntime) return c.ints(dims);
  if (!like || like.rank !== target.length || !like.shape.every((d, i) => d === target[i])) {
    throw new Error(`Expand to ${shapeStr(target)} needs the symbolic sizes at run time: pass a tensor of that shape as 'like'.`);
  }
  const s = c.tmp('shape');
  c.emit('Shape', [c.in(1)], [s]);
  return s;
}

def({
  name: 'Reshape', // attrs.shape: numbers, symbols, or one -1; optional input 1 = 'like' for run-time sizes
  infer: (x, a) => {
    const v = need(x, 1)[0]!;
    const target = [...(a.shape as readonly Dim[])];
    const total = prodOf(v.shape);
    const holes = target.filter((d) => d === -1).length;
    if (holes > 1) throw new Error('at most one -1 in a Reshape target');
    const known = prodOf(target.filter((d) => d !== -1));
    if (holes === 1) {
      const rest = divProd(total, known);
      if (!rest) throw new Error(`cannot reshape ${shapeStr(v.shape)} to ${shapeStr(target)}`);
      target[target.indexOf(-1)] = prodToDim(rest);
    } else {
      const ok = divProd(total, known);
      if (!ok || ok.num !== 1 || ok.syms.length) {
        throw new Error(`cannot reshape ${shapeStr(v.shape)} (${prodToDim(total)} elements) to ${shapeStr(target)}`);
      }
    }
    return [{ dtype: v.dtype, shape: target }];
  },
  lower: (c) => {
    const x = c.node.inputs[0]!;
    const spec = c.node.attrs.shape as readonly Dim[];
    const out = c.node.outputs[0]!.shape;
    const dims: number[] = [];
    let unresolved = 0;
    spec.forEach((d, i) => {
      if (typeof d === 'number') dims.push(d);
      else if (x.shape[i] === d) dims.push(0); // copy from the input
      else { dims.push(-1); unresolved++; }
    });
    if (unresolved + spec.filter((d) => d === -1).length <= 1) {
      c.emit('Reshape', [c.in(0), c.ints(dims)], [c.out(0)]);
      return;
    }
    const like = c.node.inputs[1];
    if (!like || like.rank !== out.length || !like.shape.every((d, i) => d === out[i])) {
      throw new Error(`Reshape to ${shapeStr(out)} needs symbolic sizes at run time: pass a tensor of that shape as 'like'.`);
    }
    const s = c.tmp('shape');
    c.emit('Shape', [c.in(1)], [s]);
    c.emit('Reshape', [c.in(0), s], [c.out(0)]);
  },
  grad: (c) => {
    const x = c.x[0]!;
    const gy = c.gy[0];
    return c.x.map((_, i) => (i === 0 && gy ? reshapeTo(c.g, gy, x) : null));
  },
});

/** Reshape v to the shape of `like` (using it for run-time sizes when symbolic). */
export function reshapeTo(g: GraphBuilder, v: Value, like: Value): Value {
  if (v.shape.length === like.shape.length && v.shape.every((d, i) => d === like.shape[i])) return v;
  const symbolic = like.shape.some((d) => typeof d !== 'number');
  return g.apply('Reshape', symbolic ? [v, like] : [v], { shape: [...like.shape] })[0]!;
}

def({
  name: 'Transpose',
  infer: (x, a) => {
    const v = need(x, 1)[0]!;
    const perm = ints(a, 'perm');
    if (perm.length !== v.rank || [...perm].sort().some((p, i) => p !== i)) {
      throw new Error(`perm ${shapeStr(perm)} is not a permutation of rank ${v.rank}`);
    }
    return [{ dtype: v.dtype, shape: perm.map((p) => v.shape[p]!) }];
  },
  lower: plain('Transpose', (a) => ({ perm: A.is(ints(a, 'perm')) })),
  grad: (c) => {
    const perm = ints(c.node.attrs, 'perm');
    const inv = perm.map((_, i) => perm.indexOf(i));
    return [c.gy[0] ? c.g.transpose(c.gy[0], inv) : null];
  },
});

def({
  name: 'Concat',
  infer: (x, a) => {
    const vs = need(x, 1);
    const t = sameType(vs);
    const r = vs[0]!.rank;
    const ax = normAxis(num(a, 'axis'), r, 'Concat');
    const shape = [...vs[0]!.shape];
    const parts = vs.map((v) => {
      if (v.rank !== r) throw new Error('inputs differ in rank');
      v.shape.forEach((d, i) => {
        if (i !== ax && d !== shape[i]) throw new Error(`dim ${i} differs: ${d} vs ${shape[i]}`);
      });
      return v.shape[ax]!;
    });
    shape[ax] = parts.every((d) => typeof d === 'number') ? (parts as number[]).reduce((p, q) => p + q, 0) : parts.join('+');
    return [{ dtype: t, shape }];
  },
  lower: plain('Concat', (a) => ({ axis: A.i(num(a, 'axis')) })),
  grad: (c) => {
    const gy = c.gy[0];
    if (!gy) return c.x.map(() => null);
    const ax = normAxis(num(c.node.attrs, 'axis'), gy.rank, 'Concat');
    const sizes = c.x.map((v) => v!.shape[ax]!);
    if (!sizes.every((d): d is number => typeof d === 'number')) throw new Error('Concat gradient needs fixed sizes on the concat axis.');
    return c.g.split(gy, sizes, ax);
  },
});

def({
  name: 'Split', // attrs.sizes (fixed), attrs.axis
  infer: (x, a) => {
    const v = need(x, 1)[0]!;
    const ax = normAxis(num(a, 'axis'), v.rank, 'Split');
    const sizes = ints(a, 'sizes');
    const total = sizes.reduce((p, q) => p + q, 0);
    if (typeof v.shape[ax] === 'number' && v.shape[ax] !== total) {
      throw new Error(`sizes ${shapeStr(sizes)} sum to ${total}, axis ${ax} has ${v.shape[ax]}`);
    }
    return sizes.map((s) => ({ dtype: v.dtype, shape: v.shape.map((d, i) => (i === ax ? s : d)) }));
  },
  lower: (c) => {
    const n = c.node;
    c.emit('Split', [c.in(0), c.ints(ints(n.attrs, 'sizes'))], n.outputs.map((_, i) => c.out(i)), { axis: A.i(num(n.attrs, 'axis')) });
  },
  grad: (c) => {
    if (c.gy.every((v) => !v)) return [null];
    // Unused pieces contribute zeros of their own shape.
    const parts = c.gy.map((v, i) => v ?? c.g.zerosLike(c.y[i]!));
    return [c.g.concat(parts, num(c.node.attrs, 'axis'))];
  },
});

/** Static Slice output dim; ends clamp like ONNX. */
function sliceDim(d: Dim, s: number, e: number, what: string): { start: number; end: number; len: number } {
  if (typeof d !== 'number') {
    if (s >= 0 && e >= s && e < 2 ** 31 - 1) return { start: s, end: e, len: e - s };
    throw new Error(`${what}: slicing a symbolic dim '${d}' needs 0 <= start <= end`);
  }
  const clamp = (i: number): number => Math.min(Math.max(i < 0 ? i + d : i, 0), d);
  const start = clamp(s), end = clamp(e);
  return { start, end, len: Math.max(end - start, 0) };
}

def({
  name: 'Slice', // attrs starts, ends, axes (step 1)
  infer: (x, a) => {
    const v = need(x, 1)[0]!;
    const shape = [...v.shape];
    const st = ints(a, 'starts'), en = ints(a, 'ends');
    ints(a, 'axes').forEach((ax0, k) => {
      const ax = normAxis(ax0, v.rank, 'Slice');
      shape[ax] = sliceDim(v.shape[ax]!, st[k]!, en[k]!, 'Slice').len;
    });
    return [{ dtype: v.dtype, shape }];
  },
  lower: (c) => {
    const a = c.node.attrs;
    c.emit('Slice', [c.in(0), c.ints(ints(a, 'starts')), c.ints(ints(a, 'ends')), c.ints(ints(a, 'axes'))], [c.out(0)]);
  },
  grad: (c) => {
    const gy = c.gy[0];
    const x = c.x[0]!;
    if (!gy) return [null];
    // zero-pad the slice back to the input's extent
    const pads = new Array<number>(2 * x.rank).fill(0);
    const st = ints(c.node.attrs, 'starts'), en = ints(c.node.attrs, 'ends');
    ints(c.node.attrs, 'axes').forEach((ax0, k) => {
      const ax = normAxis(ax0, x.rank, 'Slice');
      const d = x.shape[ax];
      if (typeof d !== 'number') throw new Error(`Slice gradient needs a fixed size on axis ${ax}, got '${d}'.`);
      const { start, end } = sliceDim(d, st[k]!, en[k]!, 'Slice');
      pads[ax] = start;
      pads[x.rank + ax] = d - end;
    });
    return [c.g.apply('Pad', [gy], { pads })[0]!];
  },
});

def({
  name: 'Pad', // constant zero padding; attrs.pads = [begin_0.., end_0..]
  infer: (x, a) => {
    const v = need(x, 1)[0]!;
    const pads = ints(a, 'pads');
    if (pads.length !== 2 * v.rank) throw new Error(`pads needs ${2 * v.rank} entries, got ${pads.length}`);
    const shape = v.shape.map((d, i) => {
      if (pads[i] === 0 && pads[v.rank + i] === 0) return d;
      if (typeof d !== 'number') throw new Error(`padding symbolic dim '${d}'`);
      return d + pads[i]! + pads[v.rank + i]!;
    });
    return [{ dtype: v.dtype, shape }];
  },
  lower: (c) => c.emit('Pad', [c.in(0), c.ints(ints(c.node.attrs, 'pads'))], [c.out(0)], { mode: A.s('constant') }),
  grad: (c) => {
    const gy = c.gy[0];
    const x = c.x[0]!;
    if (!gy) return [null];
    const pads = ints(c.node.attrs, 'pads');
    const axes = x.shape.map((_, i) => i).filter((i) => pads[i] !== 0 || pads[x.rank + i] !== 0);
    const starts = axes.map((i) => pads[i]!);
    const ends = axes.map((i) => pads[i]! + (x.shape[i] as number));
    return [c.g.slice(gy, starts, ends, axes)];
  },
});

def({
  name: 'Squeeze',
  infer: (x, a) => {
    const v = need(x, 1)[0]!;
    const axes = ints(a, 'axes').map((i) => normAxis(i, v.rank, 'Squeeze'));
    for (const i of axes) if (v.shape[i] !== 1) throw new Error(`axis ${i} has size ${v.shape[i]}, not 1`);
    return [{ dtype: v.dtype, shape: v.shape.filter((_, i) => !axes.includes(i)) }];
  },
  lower: (c) => c.emit('Squeeze', [c.in(0), c.ints(ints(c.node.attrs, 'axes'))], [c.out(0)]),
  grad: (c) => [c.gy[0] ? reshapeTo(c.g, c.gy[0], c.x[0]!) : null],
});

def({
  name: 'Unsqueeze',
  infer: (x, a) => {
    const v = need(x, 1)[0]!;
    const r = v.rank + ints(a, 'axes').length;
    const axes = ints(a, 'axes').map((i) => normAxis(i, r, 'Unsqueeze'));
    const shape: Dim[] = [];
    let k = 0;
    for (let i = 0; i < r; i++) shape.push(axes.includes(i) ? 1 : v.shape[k++]!);
    return [{ dtype: v.dtype, shape }];
  },
  lower: (c) => c.emit('Unsqueeze', [c.in(0), c.ints(ints(c.node.attrs, 'axes'))], [c.out(0)]),
  grad: (c) => [c.gy[0] ? c.g.squeeze(c.gy[0], ints(c.node.attrs, 'axes')) : null],
});

def({
  name: 'Expand', // broadcast to attrs.shape; optional input 1 ('like') supplies symbolic sizes at run time
  infer: (x, a) => {
    const v = need(x, 1)[0]!;
    const target = a.shape as readonly Dim[];
    const shape = broadcastShapes(v.shape, target, 'Expand');
    return [{ dtype: v.dtype, shape }];
  },
  lower: (c) => {
    const n = c.node;
    const s = expandShapeInput(c, n.inputs[0]!, n.attrs.shape as readonly Dim[], n.inputs[1] ?? null);
    c.emit('Expand', [c.in(0), s], [c.out(0)]);
  },
  grad: (c) => c.x.map((_, i) => (i === 0 ? c.gy[0] ?? null : null)), // the driver sums over broadcast axes
});

def({
  name: 'Trilu', // keeps the upper (upper=1) or lower triangle of the last two dims, diagonal offset k
  infer: (x) => {
    const v = need(x, 1)[0]!;
    if (v.rank < 2) throw new Error('Trilu needs rank >= 2');
    return [{ dtype: v.dtype, shape: [...v.shape] }];
  },
  lower: (c) => c.emit('Trilu', [c.in(0), c.scalar(num(c.node.attrs, 'k'), 'int64')], [c.out(0)], {
    upper: A.i(num(c.node.attrs, 'upper')),
  }),
  grad: (c) => [c.gy[0] ? c.g.trilu(c.gy[0], !!num(c.node.attrs, 'upper'), num(c.node.attrs, 'k')) : null],
});
