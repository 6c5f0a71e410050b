import { describe, expect, it } from 'vitest';
import type { CleanConfig } from '../../../src-main/data/config';
import { newPiiCounts, scrubPii, type PiiCounts } from '../../../src-main/data/clean/pii';
import { mulberry32 } from '../../../src-main/util/random';

/**
 * Differential test: scrubPii runs its pattern only at candidate start positions; the reference
 * below is the earlier implementation (one global combined pattern through String.replace), kept
 * verbatim. Both must give the same text and the same counts for every input and switch setting.
 */
type Cfg = CleanConfig['pii'];

const REF_PLACEHOLDER: Record<keyof PiiCounts, string> = {
  email: '<EMAIL>', phone: '<PHONE>', ip: '<IP_ADDRESS>', creditCard: '<CREDIT_CARD>',
  iban: '<IBAN>', nationalId: '<NATIONAL_ID>', secret: '<SECRET>',
};
const REF_PARTS = {
  secret: String.raw`(?<secret>-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?-----END [A-Z ]*PRIVATE KEY-----|\b(?:sk-(?:proj-|ant-)?[A-Za-z0-9_-]{20,}|(?:sk|pk|rk)_(?:live|test)_[A-Za-z0-9]{16,}|gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{40,}|xox[abprs]-[A-Za-z0-9-]{10,}|A(?:KIA|SIA)[0-9A-Z]{16}|AIza[0-9A-Za-z_-]{35}|hf_[A-Za-z0-9]{30,}|glpat-[A-Za-z0-9_-]{20,}|eyJ[A-Za-z0-9_-]{10,}\.eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}))`,
  email: String.raw`(?<email>\b[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b)`,
  iban: String.raw`(?<iban>\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?\b)`,
  ipv6: String.raw`(?<ipv6>(?<![\w:.])(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}(?![\w:]))`,
  ipv4: String.raw`(?<ipv4>\b(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\b)`,
  ssn: String.raw`(?<ssn>\b\d{3}-\d{2}-\d{4}\b)`,
  card: String.raw`(?<card>\b\d(?:[ -]?\d){12,18}\b)`,
  ukPhone: String.raw`(?<ukPhone>(?<![\w+])(?:(?:\+44[ .-]?(?:\(0\)[ .-]?)?|0)\d{2,5}|\(0\d{2,5}\))(?:[ .-]?\d{3,6}){1,2}\b)`,
  phone: String.raw`(?<phone>(?<![\w+])(?:\+\d{1,3}[ .-]?)?(?:\(\d{1,4}\)[ .-]?)?\d{2,4}(?:[ .-]\d{2,4}){1,4}\b)`,
  token: String.raw`(?<token>\b[A-Za-z0-9_\-+/=]{32,}\b)`,
};
const REF_VARIANTS = new Map<number, RegExp>();
function refKey(text: string): number {
  const at = text.indexOf('@') >= 0 ? 1 : 0;
  const v6 = text.indexOf('::') >= 0 || /[0-9A-Fa-f]:[0-9A-Fa-f]{1,4}:/.test(text) ? 2 : 0;
  const long = refLongestTokenRun(text) >= 20 || text.indexOf('-----BEGIN') >= 0 ? 4 : 0;
  return at | v6 | long;
}
function refPatternFor(text: string): RegExp {
  const key = refKey(text);
  const at = key & 1, v6 = key & 2, long = key & 4;
  let re = REF_VARIANTS.get(key);
  if (!re) {
    const anchored = `(?=[0-9A-Z+(])(?:${[REF_PARTS.iban, REF_PARTS.ipv4, REF_PARTS.ssn, REF_PARTS.card, REF_PARTS.ukPhone, REF_PARTS.phone].filter(Boolean).join('|')})`;
    const parts = [long ? REF_PARTS.secret : '', at ? REF_PARTS.email : '', v6 ? REF_PARTS.ipv6 : '', anchored, long ? REF_PARTS.token : ''];
    re = new RegExp(parts.filter(Boolean).join('|'), 'g');
    REF_VARIANTS.set(key, re);
  }
  return re;
}
function refLongestTokenRun(s: string): number {
  let best = 0, run = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if ((c >= 97 && c <= 122) || (c >= 65 && c <= 90) || (c >= 45 && c <= 57 && c !== 46) || c === 95 || c === 43 || c === 61) {
      if (++run > best) best = run;
    } else run = 0;
  }
  return best;
}
function refLuhn(digits: string): boolean {
  let sum = 0;
  let dbl = false;
  for (let i = digits.length - 1; i >= 0; i--) {
    let d = digits.charCodeAt(i) - 48;
    if (dbl) { d *= 2; if (d > 9) d -= 9; }
    sum += d;
    dbl = !dbl;
  }
  return sum % 10 === 0;
}
function refIban(iban: string): boolean {
  const s = iban.replace(/ /g, '');
  if (s.length < 15 || s.length > 34) return false;
  const r = s.slice(4) + s.slice(0, 4);
  let mod = 0;
  for (const ch of r) {
    const c = ch.charCodeAt(0);
    const v = c >= 65 ? String(c - 55) : ch;
    for (const d of v) mod = (mod * 10 + (d.charCodeAt(0) - 48)) % 97;
  }
  return mod === 1;
}
function refIpv6(s: string): boolean {
  const dbl = s.split('::');
  if (dbl.length > 2) return false;
  const groups = s.split(':').filter((g) => g.length > 0);
  if (groups.some((g) => !/^[0-9A-Fa-f]{1,4}$/.test(g))) return false;
  if (dbl.length === 2) return groups.length <= 7 && !/^:[^:]|[^:]:$/.test(s);
  if (s.startsWith(':') || s.endsWith(':')) return false;
  return groups.length === 8;
}
function refEntropy(s: string): number {
  const m = new Map<string, number>();
  for (const c of s) m.set(c, (m.get(c) ?? 0) + 1);
  let h = 0;
  for (const v of m.values()) { const p = v / s.length; h -= p * Math.log2(p); }
  return h;
}
function refSecret(t: string): boolean {
  if (!/\d/.test(t) || !/[A-Za-z]/.test(t)) return false;
  if (!/[A-Z]/.test(t) || !/[a-z]/.test(t)) return false;
  return refEntropy(t) >= 4.2;
}
function refPhone(m: string): boolean {
  const digits = m.replace(/\D/g, '');
  if (digits.length < 7 || digits.length > 15) return false;
  if (/^\d{4}[-./]\d{1,2}[-./]\d{1,2}$/.test(m) || /^\d{1,2}[-./]\d{1,2}[-./]\d{2,4}$/.test(m)) return false;
  if (/^\d{1,3}(\.\d{1,3})+$/.test(m)) return false;
  if (!/[+(]/.test(m) && !/\d{3,}$/.test(m)) return false;
  return true;
}
function refUkPhone(m: string): boolean {
  const all = m.replace(/\D/g, '');
  const d = m.startsWith('+') ? all.slice(2).replace(/^0/, '') : all.slice(1);
  return (d.length === 9 || d.length === 10) && d[0] !== '0';
}
function refScrub(text: string, cfg: Cfg, counts: PiiCounts): string {
  const pattern = refPatternFor(text);
  pattern.lastIndex = 0;
  return text.replace(pattern, (m: string, ...rest: unknown[]) => {
    const g = rest[rest.length - 1] as Record<string, string | undefined>;
    const hit = (t: keyof PiiCounts): string => { counts[t]++; return REF_PLACEHOLDER[t]; };
    if (g.secret !== undefined) return cfg.secret ? hit('secret') : m;
    if (g.email !== undefined) return cfg.email ? hit('email') : m;
    if (g.iban !== undefined) return cfg.iban && refIban(m) ? hit('iban') : m;
    if (g.ipv6 !== undefined) return cfg.ip && refIpv6(m) ? hit('ip') : m;
    if (g.ipv4 !== undefined) return cfg.ip ? hit('ip') : m;
    if (g.ssn !== undefined) {
      const ok = !/^(000|666|9\d\d)|^\d{3}-00|0000$/.test(m);
      if (ok && cfg.nationalId) return hit('nationalId');
      return cfg.phone && refPhone(m) ? hit('phone') : m;
    }
    if (g.card !== undefined) {
      const digits = m.replace(/\D/g, '');
      if (cfg.creditCard && digits.length >= 13 && refLuhn(digits)) return hit('creditCard');
      return cfg.phone && refPhone(m) ? hit('phone') : m;
    }
    if (g.ukPhone !== undefined) return cfg.phone && (refUkPhone(m) || refPhone(m)) ? hit('phone') : m;
    if (g.phone !== undefined) return cfg.phone && refPhone(m) ? hit('phone') : m;
    if (g.token !== undefined) return cfg.secret && refSecret(m) ? hit('secret') : m;
    return m;
  });
}

const FLAGS = ['email', 'phone', 'ip', 'creditCard', 'iban', 'nationalId', 'secret'] as const;
/** All 128 settings of the per-type switches (`enabled` is the pipeline's, not scrubPii's). */
const CONFIGS: Cfg[] = Array.from({ length: 1 << FLAGS.length }, (_, bits) =>
  Object.fromEntries([['enabled', true], ...FLAGS.map((f, i) => [f, (bits >> i & 1) === 1])]) as Cfg);
const ALL_ON = CONFIGS[CONFIGS.length - 1]!;

/** Totals over the comparisons of one test, to show its inputs reach every branch. */
let seen = { ...newPiiCounts(), variants: new Set<number>() };
function same(text: string, cfg: Cfg): void {
  const want = newPiiCounts(), got = newPiiCounts();
  const expected = refScrub(text, cfg, want);
  const actual = scrubPii(text, cfg, got);
  if (actual !== expected || JSON.stringify(got) !== JSON.stringify(want)) {
    // toEqual on both, with the input and switches in view, gives a readable failure.
    expect({ text, cfg, out: actual, counts: got }).toEqual({ text, cfg, out: expected, counts: want });
  }
  for (const k of FLAGS) seen[k] += want[k];
  seen.variants.add(refKey(text));
}

const EXISTING = [
  'Write to anna.k+wood@example.org or +44 20 7946 0958. Card 4539 1488 0343 6467, IBAN GB82 WEST 1234 5698 7654 32, ' +
    'server 10.0.0.12 / 2001:db8:85a3::8a2e:370:7334, SSN 078-05-1120, key ghp_A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8 and AKIAIOSFODNN7EXAMPLE, ' +
    'token Zq8Xv2Lm9Pw4Rt7Yk3Hn6Bd1Gs5Jc0Fa.',
  'Order 4539 1488 0343 6468 on 2024-05-01 at 12:30:45; board 1200 x 300 mm; commit 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b; IBAN GB82 WEST 1234 5698 7654 33.',
  'mail a@b.co',
  'The bowl gouge is the tool most turners reach for. Contact me at joe@example.com.',
  'Write to the turner at turner@example.com and the rest of the note is about the bevel of the tool and the wood on the lathe.',
  'Mail me: a@b.co',
  'Contact j.smith@example.com for details.', 'Call +1 (555) 010-4477 after six.', 'Card 4539 1488 0343 6467 was charged.', 'The host 10.20.30.40 is the shop server.',
  '', 'no digits here at all', '1', '+1', '(1', 'AB12',
];

const FRAGMENTS = [
  'DE89 3704 0044 0532 0130 00', 'DE89370400440532013000', 'GB82 WEST 1234 5698 7654 32', 'GB82WEST12345698765432', 'DE89 3704',
  '4539 1488 0343 6467', '4539-1488-0343-6467', '4539148803436467', '4111 1111 1111 1111', '378282246310005',
  '+1 (555) 010-4477', '+44 20 7946 0958', '020 7946 0958', '07700 900123', '(020) 7946 0958', '+447700900123', '07700900123',
  '+44 (0)20 7946 0958', '0161 496 0000', '01632 960123', '0049 30 123 4567', '0123 45678', 'ASIAIOSFODNN7EXAMPLE', '(555) 010-4477', '555-010-4477', '555.010.4477', '+49 30 1234567', '0049 30 123 4567',
  '123-45-6789', '078-05-1120', '000-12-3456', '666-12-3456', '987-65-4321', '123-00-4567', '2024-05-01', '01/02/2024', '1.2.3.4', '12:30:45',
  '10.20.30.40', '192.168.0.1', '256.1.1.1', '10.0.0.12', '1.2.3',
  'a@b.co', 'anna.k+wood@example.org', 'j.smith@example.com', '555-0100@x.io', '4539 1488@b.co', 'x.1234567@mail.example.de', '@', 'a@', '@b.co',
  '2001:db8:85a3::8a2e:370:7334', '2001:0db8:85a3:0000:0000:8a2e:0370:7334', 'fe80::1', '::1', '::', 'a:b:c', 'dead:beef::', '1:2:3:4:5:6:7:8', 'ab:cd:', ':::',
  'ghp_A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8', 'AKIAIOSFODNN7EXAMPLE', 'xoxb-1234567890', 'xoxb-1234567890abcdef', 'sk-proj-Ab3De5Gh7Jk9Lm1No3Pq5',
  'sk_live_1234567890abcdefXY', 'hf_AbCdEfGhIjKlMnOpQrStUvWxYz012345', 'glpat-Ab3De5Gh7Jk9Lm1No3Pq', 'AIzaSyA1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q',
  'eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U', 'eyJabcdefghijk.eyJabcdefghijk.abcdefghijk', 'eyJabcdefghij.eyJabcdefghij.abcdefghij',
  'Zq8Xv2Lm9Pw4Rt7Yk3Hn6Bd1Gs5Jc0Fa', 'Zq8Xv2Lm9Pw4Rt7Yk3Hn6Bd1Gs5Jc0Fa/+=Qw', 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa', 'state-of-the-art-machine-tools',
  '-----BEGIN RSA PRIVATE KEY-----\nMIIBOgIBAAJBAKj34GkxFhD9\n-----END RSA PRIVATE KEY-----', '-----BEGIN', '-----END PRIVATE KEY-----',
  '9f86d081884c7d659a2feaa0c55ad015a3bf4f1b', 'A1', 'AB', 'AB1', 'x2', '_9', '1_', '%', '/', '=',
];
const CHARS = '0123456789012345678901234567890123456789      ++((()))---...::::@@@AABCDEFGHIKLMNOPQRSTUVWXYZZabcdefghijklmnopqrstuvwxyz_/=%\n\t,;!é';

function randomString(r: () => number, parts: number): string {
  let s = '';
  for (let k = 0; k < parts; k++) {
    const u = r();
    if (u < 0.25) s += FRAGMENTS[Math.floor(r() * FRAGMENTS.length)]!;
    else if (u < 0.35) { const f = FRAGMENTS[Math.floor(r() * FRAGMENTS.length)]!; const a = Math.floor(r() * f.length); s += f.slice(a, a + 1 + Math.floor(r() * (f.length - a))); }
    else s += CHARS[Math.floor(r() * CHARS.length)]!;
  }
  return s;
}

const WORDS = 'the of and a to in is that it for on with as was at by be this from or which one all were when your can said there use each she do how their if will up other about out many then them these so some her would make like him into time has look two more write go see number no way could people my than first water been call who oil its now find long down day did get come made may part bowl gouge lathe bevel spindle chuck tenon mortise walnut maple oak sanding finish'.split(' ');
function paragraph(r: () => number): string {
  const out: string[] = [];
  const n = 200 + Math.floor(r() * 800);
  for (let i = 0; i < n; i++) {
    const u = r();
    if (u < 0.03) out.push(FRAGMENTS[Math.floor(r() * FRAGMENTS.length)]!);
    else if (u < 0.06) out.push(String(Math.floor(r() * 100000) / (r() < 0.5 ? 1 : 100)));
    else if (u < 0.08) out.push(`${Math.floor(r() * 2000)} x ${Math.floor(r() * 500)} mm`);
    else { let w = WORDS[Math.floor(r() * WORDS.length)]!; if (r() < 0.08) w = w[0]!.toUpperCase() + w.slice(1); out.push(w); }
    if (r() < 0.07) out.push(r() < 0.5 ? '.' : r() < 0.5 ? ',' : r() < 0.5 ? ':' : '\n\n');
  }
  return out.join(' ');
}

describe('scrubPii matches the single-pattern reference', () => {
  it('on the PII test strings, under every switch setting', () => {
    for (const t of EXISTING) for (const c of CONFIGS) same(t, c);
  });

  it('on random strings of digits, separators, capitals and PII fragments', () => {
    seen = { ...newPiiCounts(), variants: new Set<number>() };
    const r = mulberry32(20240501);
    for (let i = 0; i < 20000; i++) {
      const s = randomString(r, 1 + Math.floor(r() * 40));
      same(s, ALL_ON);
      same(s, CONFIGS[Math.floor(r() * CONFIGS.length)]!);
    }
    // Every type replaced many times, every pattern variant (email / IPv6 / secrets present or not) met.
    for (const k of FLAGS) expect(seen[k], k).toBeGreaterThan(50);
    expect([...seen.variants].sort()).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
  });

  it('on long prose paragraphs with embedded PII', () => {
    seen = { ...newPiiCounts(), variants: new Set<number>() };
    const r = mulberry32(7);
    for (let i = 0; i < 300; i++) {
      const p = paragraph(r);
      same(p, ALL_ON);
      same(p, CONFIGS[Math.floor(r() * CONFIGS.length)]!);
    }
    for (const k of FLAGS) expect(seen[k], k).toBeGreaterThan(20);
    expect(seen.variants.size).toBeGreaterThan(3);
  });
});
