import { describe, expect, it } from 'vitest';
import { resizeEmbeddings } from '../../../src-main/tokenizer/embeddings';
import { UserError } from '../../../src-main/util/progress';

// V = 4 rows, H = 2:  row0 = [1, 2], row1 = [3, 4], row2 = [5, 6], row3 = [7, 8]
const M = Float32Array.from([1, 2, 3, 4, 5, 6, 7, 8]);

describe('resizeEmbeddings', () => {
  it('mean of sub-token rows (hand-computed)', () => {
    const { matrix, rows } = resizeEmbeddings(M, 4, 2, [
      { id: 4, baseIds: [0, 2] }, //        ([1,2] + [5,6]) / 2         = [3, 4]
      { id: 5, baseIds: [1, 1, 3] }, //     ([3,4] + [3,4] + [7,8]) / 3 = [13/3, 16/3]
    ]);
    expect(rows).toBe(6);
    expect([...matrix.slice(0, 8)]).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    expect([...matrix.slice(8, 10)]).toEqual([3, 4]);
    expect(matrix[10]).toBeCloseTo(13 / 3, 6);
    expect(matrix[11]).toBeCloseTo(16 / 3, 6);
  });

  it('global mean (hand-computed), optionally over the real rows only', () => {
    const all = resizeEmbeddings(M, 4, 2, [{ id: 4, baseIds: [0] }], 'global-mean');
    expect([...all.matrix.slice(8)]).toEqual([4, 5]); // mean of 1,3,5,7 and 2,4,6,8
    const firstTwo = resizeEmbeddings(M, 4, 2, [{ id: 4, baseIds: [] }], 'global-mean', { meanRows: 2 });
    expect([...firstTwo.matrix.slice(8)]).toEqual([2, 3]);
  });

  it('reuses padding rows when the matrix already has more rows than the tokenizer', () => {
    // Rows 2 and 3 are padding (the tokenizer has 2 tokens); new token id 2 takes row 2, id 4 grows to 5 rows.
    const { matrix, rows } = resizeEmbeddings(M, 4, 2, [{ id: 2, baseIds: [0, 1] }, { id: 4, baseIds: [1] }]);
    expect(rows).toBe(5);
    expect([...matrix]).toEqual([1, 2, 3, 4, 2, 3, 7, 8, 3, 4]);
  });

  it('works for lm_head the same way (any [V, H] matrix) and leaves the input untouched', () => {
    const copy = M.slice();
    resizeEmbeddings(M, 4, 2, [{ id: 4, baseIds: [3] }]);
    expect([...M]).toEqual([...copy]);
  });

  it('rejects wrong shapes, unknown base ids and empty sub-token lists', () => {
    const code = (f: () => unknown): string => { try { f(); } catch (e) { return (e as UserError).code; } return 'none'; };
    expect(code(() => resizeEmbeddings(M, 3, 2, []))).toBe('embedding-shape');
    expect(code(() => resizeEmbeddings(M, 4, 2, [{ id: 4, baseIds: [9] }]))).toBe('embedding-bad-subtoken');
    expect(code(() => resizeEmbeddings(M, 4, 2, [{ id: 4, baseIds: [] }]))).toBe('embedding-no-subtokens');
    expect(code(() => resizeEmbeddings(M, 4, 2, [{ id: 4, baseIds: [0] }], 'zeros' as never))).toBe('embedding-mode');
  });
});
