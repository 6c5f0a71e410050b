/**
 * The reply of a rendered preference pair: the last run of loss tokens the chat template marks (the final
 * assistant reply and its end-of-turn). Earlier assistant turns are prompt. Pure (no Node imports), so the
 * Chat template page can show the same mask.
 */
export function replySpan(mask: ArrayLike<number>): { start: number; end: number } | null {
  let end = -1;
  for (let i = mask.length - 1; i >= 0; i--) if (mask[i]) { end = i + 1; break; }
  if (end < 0) return null;
  let start = end - 1;
  while (start > 0 && mask[start - 1]) start--;
  return { start, end };
}

/** The loss mask of a preference side: 1 on the reply only. */
export function replyMask(mask: ArrayLike<number>): number[] {
  const s = replySpan(mask);
  return Array.from({ length: mask.length }, (_, i) => (s && i >= s.start && i < s.end ? 1 : 0));
}
