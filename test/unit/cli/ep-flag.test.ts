/** `--ep` for the forward-only commands: absent or `auto` chooses as the app's jobs do, never a silent surprise. */
import { describe, expect, it } from 'vitest';
import { inferEpFlag, resolveEpFlag } from '../../../src-main/cli/gpu';
import type { CliContext } from '../../../src-main/cli/types';

function ctx(flags: CliContext['flags']): CliContext & { errs: string[] } {
  const errs: string[] = [];
  return { args: [], flags, json: false, out: () => undefined, err: (t) => { errs.push(t); }, signal: new AbortController().signal, errs };
}

describe('--ep', () => {
  it('takes a device as given, auto, or nothing', () => {
    for (const v of ['cpu', 'webgpu', 'cuda', 'gpu', 'auto']) expect(inferEpFlag(ctx({ ep: v }))).toBe(v);
    expect(inferEpFlag(ctx({}))).toBeUndefined();
  });

  it('refuses an unknown device in plain words, naming the choices', () => {
    expect(() => inferEpFlag(ctx({ ep: 'tpu' }))).toThrow(/--ep must be auto, cpu, webgpu, cuda or gpu \(got "tpu"\)/);
  });

  it('a named device is used without opening anything; automatic without a GPU device is the CPU EP', async () => {
    expect(await resolveEpFlag(ctx({ ep: 'gpu' }), false)).toBe('gpu');
    expect(await resolveEpFlag(ctx({ ep: 'cpu' }), true)).toBe('cpu');
    const c = ctx({});
    expect(await resolveEpFlag(c, false)).toBeUndefined();
    expect(await resolveEpFlag(ctx({ ep: 'auto' }), false)).toBeUndefined();
    expect(c.errs).toEqual([]); // nothing was looked at, nothing to say
  });
});
