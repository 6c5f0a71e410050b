/**
 * .ci/apt-sources.sh: the bookworm-backports source is derived from the machine's own apt sources (deb822
 * and one-line formats), never from a mirror named in the repository.
 */
import { describe, expect, it } from 'vitest';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { tempDir } from '../../helpers/services';

const SCRIPT = path.resolve('.ci/apt-sources.sh');

/** A fake root with the given files under etc/apt/. */
function root(files: Record<string, string>): string {
  const r = tempDir('lathe-apt-');
  mkdirSync(path.join(r, 'etc/apt/sources.list.d'), { recursive: true });
  for (const [name, text] of Object.entries(files)) writeFileSync(path.join(r, 'etc/apt', name), text);
  return r;
}

function run(fn: string, r: string): { code: number; out: string } {
  const p = spawnSync('bash', ['-c', `set -euo pipefail; . "${SCRIPT}"; ${fn} "$1"`, 'bash', r], { encoding: 'utf8' });
  return { code: p.status ?? -1, out: p.stdout };
}

const KEYRING = '/usr/share/keyrings/debian-archive-keyring.gpg';

describe('bookworm-backports from the existing apt sources', () => {
  it('deb822: takes the URI and Signed-By of the bookworm main entry (comments inside stanzas, security skipped)', () => {
    const r = root({
      'sources.list.d/debian.sources': `Types: deb
# http://snapshot.example/archive/debian/20250520T000000Z
URIs: http://mirror.example/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: ${KEYRING}

Types: deb
URIs: http://mirror.example/debian-security
Suites: bookworm-security
Components: main
Signed-By: ${KEYRING}
`,
      'sources.list.d/other.list.disabled': 'deb http://ignored.example/debian bookworm main\n',
    });
    expect(run('has_backports', r).code).toBe(1);
    const s = run('backports_source', r);
    expect(s.code).toBe(0);
    expect(s.out).toBe(`Types: deb\nURIs: http://mirror.example/debian\nSuites: bookworm-backports\nComponents: main\nSigned-By: ${KEYRING}\n`);
  });

  it('one-line: options in brackets (signed-by), trailing comments, deb-src and third-party bookworm repos skipped', () => {
    const r = root({
      'sources.list': `# the main archive
deb-src http://src.example/debian bookworm main
deb [ arch=amd64 signed-by=/etc/apt/keyrings/local.gpg ] https://local.example/debian/ bookworm main contrib # local mirror
deb http://security.example/debian-security bookworm-security main
`,
      'sources.list.d/docker.list': 'deb [signed-by=/etc/apt/keyrings/docker.gpg] https://download.example/linux/debian bookworm stable\n',
    });
    const s = run('backports_source', r);
    expect(s.code).toBe(0);
    expect(s.out).toBe('Types: deb\nURIs: https://local.example/debian/\nSuites: bookworm-backports\nComponents: main\nSigned-By: /etc/apt/keyrings/local.gpg\n');
  });

  it('no signed-by stays without one; a disabled stanza is skipped; an inline key is carried over', () => {
    const plain = root({ 'sources.list': 'deb http://plain.example/debian bookworm main\n' });
    expect(run('backports_source', plain).out).toBe('Types: deb\nURIs: http://plain.example/debian\nSuites: bookworm-backports\nComponents: main\n');

    const inline = root({
      'sources.list.d/a.sources': `Enabled: no
Types: deb
URIs: http://disabled.example/debian
Suites: bookworm
Components: main

Types: deb deb-src
URIs: http://inline.example/debian
Suites: bookworm
Components: main non-free-firmware
Signed-By:
 -----BEGIN PGP PUBLIC KEY BLOCK-----
 .
 mQINBGPL0BUBEADmW5NlOWeaeJAAEtvuSEAc
 -----END PGP PUBLIC KEY BLOCK-----
`,
    });
    const s = run('backports_source', inline);
    expect(s.code).toBe(0);
    expect(s.out).toBe('Types: deb\nURIs: http://inline.example/debian\nSuites: bookworm-backports\nComponents: main\nSigned-By: \n -----BEGIN PGP PUBLIC KEY BLOCK-----\n .\n mQINBGPL0BUBEADmW5NlOWeaeJAAEtvuSEAc\n -----END PGP PUBLIC KEY BLOCK-----\n');
  });

  it('sees an existing backports entry in either format, and fails plainly with no bookworm main entry', () => {
    expect(run('has_backports', root({ 'sources.list': 'deb http://m.example/debian bookworm-backports main\n' })).code).toBe(0);
    expect(run('has_backports', root({ 'sources.list.d/b.sources': 'Types: deb\nURIs: http://m.example/debian\nSuites: bookworm-backports\nComponents: main\n' })).code).toBe(0);
    const none = root({ 'sources.list': 'deb http://m.example/debian trixie main\n' });
    expect(run('backports_source', none)).toEqual({ code: 1, out: '' });
    expect(run('backports_source', root({}))).toEqual({ code: 1, out: '' });
  });

  it('the CI scripts name no mirror host', () => {
    for (const f of ['.ci/run', '.ci/apt-sources.sh']) {
      expect(readFileSync(f, 'utf8')).not.toMatch(/https?:\/\/[a-z0-9.-]+\.(org|com|net|de|uk|edu)\b/i);
    }
    expect(execFileSync('bash', ['-n', '.ci/run']).toString()).toBe('');
  });
});
