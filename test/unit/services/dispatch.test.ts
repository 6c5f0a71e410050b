import { describe, expect, it } from 'vitest';
import { dispatch } from '../../../src-main/services';
import { fakeKeychain, tempDir, testServices } from '../../helpers/services';

describe('gatekeeper dispatch', () => {
  it('rejects a malformed payload with a clear error naming the channel and field', async () => {
    const s = testServices();
    const res = await dispatch(s, 'projects.create', { parentDir: 42, name: '' });
    expect(res.ok).toBe(false);
    if (res.ok) return;
    expect(res.error.code).toBe('ipc.badPayload');
    expect(res.error.message).toContain('projects.create');
    expect(res.error.message).toContain('parentDir');
  });

  it('rejects unknown keys (strict schemas) and unknown channels', async () => {
    const s = testServices();
    const extra = await dispatch(s, 'projects.open', { path: '/tmp/x', evil: true });
    expect(extra.ok).toBe(false);
    if (!extra.ok) expect(extra.error.message).toMatch(/evil|unrecognized/i);
    const unknown = await dispatch(s, 'shell.exec', { cmd: 'rm -rf /' });
    expect(unknown).toEqual({ ok: false, error: { code: 'ipc.unknownChannel', message: 'Unknown channel "shell.exec".' } });
    const proto = await dispatch(s, '__proto__', {});
    expect(proto.ok).toBe(false);
  });

  it('rejects a job request whose params do not match its kind', async () => {
    const s = testServices();
    const res = await dispatch(s, 'jobs.start', { kind: 'selftest', params: { steps: -1, intervalMs: 0 } });
    expect(res.ok).toBe(false);
    const unknownKind = await dispatch(s, 'jobs.start', { kind: 'format-disk', params: {} });
    expect(unknownKind.ok).toBe(false);
  });

  it('round-trips a valid call and turns service errors into plain words', async () => {
    const s = testServices();
    const dir = tempDir();
    const created = await dispatch(s, 'projects.create', { parentDir: dir, name: 'My project' });
    expect(created.ok).toBe(true);
    const again = await dispatch(s, 'projects.create', { parentDir: dir, name: 'My project' });
    expect(again.ok).toBe(false);
    if (!again.ok) {
      expect(again.error.code).toBe('projects.exists');
      expect(again.error.hint).toBeTruthy();
    }
  });

  it('stores the hub token only encrypted, and refuses without a keychain', async () => {
    const none = testServices();
    const refused = await dispatch(none, 'secrets.setHubToken', { token: 'hf_abcdefghijk' });
    expect(refused.ok).toBe(false);
    if (!refused.ok) expect(refused.error.code).toBe('secrets.unavailable');
    expect(JSON.stringify(none.settings.get())).not.toContain('hf_abcdefghijk');

    const s = testServices({ secretBox: fakeKeychain });
    expect((await dispatch(s, 'secrets.setHubToken', { token: 'hf_abcdefghijk' })).ok).toBe(true);
    expect(JSON.stringify(s.settings.get())).not.toContain('hf_abcdefghijk');
    expect(s.secrets.getHubToken()).toBe('hf_abcdefghijk');
    expect(await dispatch(s, 'secrets.hasHubToken', {})).toEqual({ ok: true, value: { present: true, available: true } });
    expect(await dispatch(s, 'secrets.clearHubToken', {})).toEqual({ ok: true, value: { cleared: true } });
    expect(s.secrets.getHubToken()).toBeNull();
  });
});
