/**
 * Symbolic dimension arithmetic, just enough for Reshape with -1 over symbolic dims:
 * a product is kept as a numeric factor times a sorted list of symbol names, written 'B*T' or '4*B'.
 */
import type { Dim } from './types';

interface Prod { num: number; syms: string[] }

function factor(d: Dim): Prod {
  if (typeof d === 'number') return { num: d, syms: [] };
  const syms: string[] = [];
  let num = 1;
  for (const part of d.split('*')) {
    if (/^\d+$/.test(part)) num *= Number(part);
    else syms.push(part);
  }
  return { num, syms };
}

export function prodOf(dims: readonly Dim[]): Prod {
  const out: Prod = { num: 1, syms: [] };
  for (const d of dims) {
    const f = factor(d);
    out.num *= f.num;
    out.syms.push(...f.syms);
  }
  out.syms.sort();
  return out;
}

export function prodToDim(p: Prod): Dim {
  if (p.syms.length === 0) return p.num;
  return (p.num === 1 ? [] : [String(p.num)]).concat(p.syms).join('*');
}

/** total / part, or null when it does not divide. */
export function divProd(total: Prod, part: Prod): Prod | null {
  if (part.num === 0 || total.num % part.num !== 0) return null;
  const syms = [...total.syms];
  for (const s of part.syms) {
    const i = syms.indexOf(s);
    if (i < 0) return null;
    syms.splice(i, 1);
  }
  return { num: total.num / part.num, syms };
}

export function sameProd(a: Prod, b: Prod): boolean {
  return a.num === b.num && a.syms.join('*') === b.syms.join('*');
}
