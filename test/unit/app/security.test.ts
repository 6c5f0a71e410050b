/**
 * The window's security policy (issue 16): external links only to allow-listed hosts, navigation kept on
 * the app's page, no permissions, no secrets stored with Linux's fixed-key backend, and the packaging
 * fuses flipped on an Electron binary.
 */
import { describe, expect, it } from 'vitest';
import { readFileSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { allowPermission, isAllowedExternalUrl, isAppNavigation } from '../../../src-main/app/security';
import { SecretsService, weakBackendReason, type SecretBox } from '../../../src-main/services/secrets';
import { SettingsService, MemoryStore } from '../../../src-main/services/settings';
import { fakeKeychain, tempDir } from '../../helpers/services';
// @ts-expect-error: a plain .mjs script without types
import { applyLatheFuses } from '../../../bin/flip-fuses.mjs';

describe('external links', () => {
  it('opens only https links to allow-listed hosts, without credentials or odd ports', () => {
    expect(isAllowedExternalUrl('https://huggingface.co/docs/peft')).toBe(true);
    for (const url of [
      'http://huggingface.co/', 'https://huggingface.co.evil.example/', 'https://evil.example/?huggingface.co',
      'https://user:pw@huggingface.co/', 'https://huggingface.co:8443/', 'file:///etc/passwd', 'javascript:alert(1)',
      'smb://host/share', 'https://example.com/', 'not a url', `https://huggingface.co/${'a'.repeat(3000)}`,
    ]) expect(isAllowedExternalUrl(url), url).toBe(false);
  });

  it('keeps navigation and redirects on the app page', () => {
    const app = 'file:///opt/lathe/resources/app.asar/out/renderer/index.html';
    expect(isAppNavigation(`${app}#/projects`, app)).toBe(true);
    expect(isAppNavigation('file:///etc/passwd', app)).toBe(false);
    expect(isAppNavigation('https://huggingface.co/', app)).toBe(false);
    expect(isAppNavigation('http://localhost:5173/', 'http://localhost:5173/')).toBe(true);
    expect(isAppNavigation('http://localhost:5174/', 'http://localhost:5173/')).toBe(false);
    expect(isAppNavigation('%', app)).toBe(false);
  });

  it('grants no permission', () => {
    for (const p of ['media', 'notifications', 'geolocation', 'clipboard-read', 'openExternal', 'fullscreen']) expect(allowPermission(p)).toBe(false);
  });
});

describe('secrets on Linux', () => {
  it('refuses the basic_text (fixed key) backend in plain words and accepts a keyring', () => {
    expect(weakBackendReason('linux', 'basic_text')).toMatch(/fixed key/);
    expect(weakBackendReason('linux', 'unknown')).toMatch(/fixed key/);
    expect(weakBackendReason('linux', 'gnome_libsecret')).toBeNull();
    expect(weakBackendReason('darwin', undefined)).toBeNull();

    const box = (backend: string): SecretBox => ({ ...fakeKeychain, backend: () => backend });
    const weak = new SecretsService(new SettingsService(new MemoryStore()), box('basic_text'), 'linux');
    expect(weak.available()).toBe(false);
    expect(() => weak.setHubToken('hf_abcdefghijk')).toThrow(expect.objectContaining({ code: 'secrets.weakKeychain' }));
    const settings = new SettingsService(new MemoryStore());
    const ok = new SecretsService(settings, box('gnome_libsecret'), 'linux');
    ok.setHubToken('hf_abcdefghijk');
    expect(ok.getHubToken()).toBe('hf_abcdefghijk');
    expect(JSON.stringify(settings.get())).not.toContain('hf_abcdefghijk');
  });
});

describe('packaging fuses', () => {
  it('flips RunAsNode, NODE_OPTIONS and --inspect off and asar-only loading with integrity on', async () => {
    // A stand-in binary with Electron's fuse wire (sentinel, version 1, 9 fuses) between random bytes.
    const SENTINEL = 'dL7pKGdnNz796PbbjQWNKmHXBZaB9tsX';
    const file = path.join(tempDir('lathe-fuses-'), 'electron');
    const wire = Buffer.from([1, 9, ...Buffer.from('101100101')]);
    writeFileSync(file, Buffer.concat([randomBytes(70_000), Buffer.from(SENTINEL), wire, randomBytes(70_000)]));
    const result = (await applyLatheFuses(file)) as Record<string, number>;
    const bytes = readFileSync(file);
    const at = bytes.indexOf(SENTINEL) + SENTINEL.length + 2;
    // '0' off, '1' on: RunAsNode, CookieEncryption, NODE_OPTIONS, --inspect, AsarIntegrity, OnlyAsar, V8Snapshot (kept), FileProtocol, WasmTrap (kept).
    expect(bytes.subarray(at, at + 9).toString()).toBe('010011101');
    expect(result['0']).toBe(48);
  });
});
