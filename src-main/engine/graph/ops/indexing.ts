/** Gather (embeddings), GatherElements, ScatterElements(add). */
import type { Value } from '../graph';
import { def, num, A, need, sameType, plain } from './registry';
import { isInt, normAxis } from '../types';

def({
  name: 'Gather', // data[..., indices, ...] along axis (embedding lookup with axis 0)
  infer: (x, a) => {
    const [data, idx] = need(x, 2);
    if (!isInt(idx!.dtype)) throw new Error(`indices must be int32/int64, got ${idx!.dtype}`);
    const ax = normAxis(num(a, 'axis'), data!.rank, 'Gather');
    return [{ dtype: data!.dtype, shape: [...data!.shape.slice(0, ax), ...idx!.shape, ...data!.shape.slice(ax + 1)] }];
  },
  lower: plain('Gather', (a) => ({ axis: A.i(num(a, 'axis')) })),
  grad: (c) => {
    const { g } = c;
    const [data, idx] = c.x as Value[];
    const gy = c.gy[0];
    if (!gy || !c.needs(0)) return [null, null];
    if (normAxis(num(c.node.attrs, 'axis'), data!.rank, 'Gather') !== 0) {
      throw new Error(`Gather gradient is implemented for axis 0 only (${c.node}).`);
    }
    // rows of gy scatter-added into zeros [V, ...rest]: indices [N] -> [N, ...rest]
    const rest = data!.shape.slice(1);
    const flatIdx = g.reshape(idx!, [-1, ...rest.map(() => 1)]);
    const upd = g.reshape(gy, [-1, ...rest]);
    const idxE = g.expand(flatIdx, upd.shape, upd);
    return [{ kind: 'scatterAdd', indices: idxE, updates: upd, axis: 0 }, null];
  },
});

def({
  name: 'GatherElements',
  infer: (x, a) => {
    const [data, idx] = need(x, 2);
    if (!isInt(idx!.dtype)) throw new Error(`indices must be int32/int64, got ${idx!.dtype}`);
    if (idx!.rank !== data!.rank) throw new Error('indices and data must have the same rank');
    normAxis(num(a, 'axis'), data!.rank, 'GatherElements');
    return [{ dtype: data!.dtype, shape: [...idx!.shape] }];
  },
  lower: plain('GatherElements', (a) => ({ axis: A.i(num(a, 'axis')) })),
  grad: (c) => {
    const gy = c.gy[0];
    if (!gy || !c.needs(0)) return [null, null];
    return [{ kind: 'scatterAdd', indices: c.x[1]!, updates: gy, axis: num(c.node.attrs, 'axis') }, null];
  },
});

def({
  name: 'ScatterElements', // reduction 'add': data + updates placed at indices along axis
  infer: (x, a) => {
    const [data, idx, upd] = need(x, 3);
    if (!isInt(idx!.dtype)) throw new Error(`indices must be int32/int64, got ${idx!.dtype}`);
    sameType([data!, upd!]);
    if (a.reduction !== 'add') throw new Error(`only reduction 'add' is supported, got '${a.reduction}'`);
    normAxis(num(a, 'axis'), data!.rank, 'ScatterElements');
    return [{ dtype: data!.dtype, shape: [...data!.shape] }];
  },
  lower: plain('ScatterElements', (a) => ({ axis: A.i(num(a, 'axis')), reduction: A.s('add') })),
  grad: (c) => {
    const gy = c.gy[0];
    if (!gy) return [null, null, null];
    return [gy, null, c.needs(2) ? c.g.gatherElements(gy, c.x[1]!, num(c.node.attrs, 'axis')) : null];
  },
});
