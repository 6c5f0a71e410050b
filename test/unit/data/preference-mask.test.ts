import { describe, expect, it } from 'vitest';
import { replyMask, replySpan } from '../../../src-main/data/preference/mask';

describe('the reply of a rendered preference side', () => {
  it('is the last run of loss tokens; earlier assistant turns are prompt', () => {
    expect(replySpan([0, 0, 1, 1, 0, 0, 1, 1, 1, 0])).toEqual({ start: 6, end: 9 });
    expect(replyMask([0, 0, 1, 1, 0, 0, 1, 1, 1, 0])).toEqual([0, 0, 0, 0, 0, 0, 1, 1, 1, 0]);
    expect(replySpan([0, 0, 0])).toBeNull();
    expect(replyMask([0, 0])).toEqual([0, 0]);
    expect(replySpan([1, 1, 0])).toEqual({ start: 0, end: 2 }); // the caller refuses a reply with no prompt before it
  });
});
