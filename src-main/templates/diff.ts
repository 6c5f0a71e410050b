/**
 * Myers' O(ND) diff over two sequences, for comparing two templates' renders (as text pieces) and
 * their token sequences. Output: runs of equal / deleted (only in A) / inserted (only in B) items.
 */
export interface DiffOp {
  op: 'equal' | 'delete' | 'insert';
  /** [start, end) in A (empty for inserts). */
  a: [number, number];
  /** [start, end) in B (empty for deletes). */
  b: [number, number];
}

export function diffSequences<T>(A: readonly T[], B: readonly T[], eq: (x: T, y: T) => boolean = (x, y) => x === y): DiffOp[] {
  const n = A.length;
  const m = B.length;
  const max = n + m;
  const offset = max + 1;
  // v[k] = furthest x on diagonal k; one snapshot per d to walk back.
  let v = new Int32Array(2 * max + 3);
  const trace: Int32Array[] = [];
  let found = false;
  for (let d = 0; d <= max && !found; d++) {
    trace.push(v.slice());
    const next = v.slice();
    for (let k = -d; k <= d; k += 2) {
      let x = k === -d || (k !== d && v[offset + k - 1]! < v[offset + k + 1]!) ? v[offset + k + 1]! : v[offset + k - 1]! + 1;
      let y = x - k;
      while (x < n && y < m && eq(A[x]!, B[y]!)) {
        x++;
        y++;
      }
      next[offset + k] = x;
      if (x >= n && y >= m) {
        found = true;
        break;
      }
    }
    v = next;
  }
  trace.push(v.slice());
  // Walk back from (n, m) to (0, 0), emitting single steps, then merge runs.
  const steps: Array<'equal' | 'delete' | 'insert'> = [];
  let x = n;
  let y = m;
  for (let d = trace.length - 2; d >= 0 && (x > 0 || y > 0); d--) {
    const vv = trace[d]!;
    const k = x - y;
    const prevK = k === -d || (k !== d && vv[offset + k - 1]! < vv[offset + k + 1]!) ? k + 1 : k - 1;
    const prevX = d === 0 ? 0 : vv[offset + prevK]!;
    const prevY = prevX - prevK;
    while (x > prevX && y > prevY) {
      steps.push('equal');
      x--;
      y--;
    }
    if (d > 0) {
      steps.push(x === prevX ? 'insert' : 'delete');
      x = prevX;
      y = prevY;
    }
  }
  steps.reverse();
  const ops: DiffOp[] = [];
  let i = 0;
  let j = 0;
  for (const s of steps) {
    const last = ops[ops.length - 1];
    const di = s === 'insert' ? 0 : 1;
    const dj = s === 'delete' ? 0 : 1;
    if (last && last.op === s) {
      last.a[1] += di;
      last.b[1] += dj;
    } else {
      ops.push({ op: s, a: [i, i + di], b: [j, j + dj] });
    }
    i += di;
    j += dj;
  }
  return ops;
}

/** Splits text into diff units: special-token-like markers, words, whitespace runs, single symbols. */
export function textUnits(text: string): string[] {
  return text.match(/<\|[^|<>\s]{1,40}\|>|<\/?[A-Za-z_]{1,24}>|\[\/?[A-Z_]{2,24}\]|\s+|[\p{L}\p{N}_]+|[^\s\p{L}\p{N}_]/gu) ?? [];
}

export interface TextDiffChunk {
  op: 'equal' | 'delete' | 'insert';
  text: string;
}

export function diffText(a: string, b: string): TextDiffChunk[] {
  const A = textUnits(a);
  const B = textUnits(b);
  return diffSequences(A, B).map((o) => ({
    op: o.op,
    text: o.op === 'insert' ? B.slice(o.b[0], o.b[1]).join('') : A.slice(o.a[0], o.a[1]).join(''),
  }));
}
