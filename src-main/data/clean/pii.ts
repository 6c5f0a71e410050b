import type { CleanConfig } from '../config';

/**
 * PII and secret scrubbing: one combined regular expression (a single scan per document), each
 * candidate validated (Luhn for cards, mod-97 for IBANs, group rules for IPv6, entropy for unknown
 * secrets) and replaced by a typed placeholder.
 */
export type PiiType = 'email' | 'phone' | 'ip' | 'creditCard' | 'iban' | 'nationalId' | 'secret';

export const PLACEHOLDER: Record<PiiType, string> = {
  email: '<EMAIL>', phone: '<PHONE>', ip: '<IP_ADDRESS>', creditCard: '<CREDIT_CARD>',
  iban: '<IBAN>', nationalId: '<NATIONAL_ID>', secret: '<SECRET>',
};

// Order matters: earlier alternatives win at the same position.
const PARTS = {
  // Known secret formats: PEM private keys, OpenAI/Stripe/GitHub/Slack/AWS/Google/HF/GitLab tokens, JWTs.
  secret: String.raw`(?<secret>-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?-----END [A-Z ]*PRIVATE KEY-----|\b(?:sk-(?:proj-|ant-)?[A-Za-z0-9_-]{20,}|(?:sk|pk|rk)_(?:live|test)_[A-Za-z0-9]{16,}|gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{40,}|xox[abprs]-[A-Za-z0-9-]{10,}|AKIA[0-9A-Z]{16}|AIza[0-9A-Za-z_-]{35}|hf_[A-Za-z0-9]{30,}|glpat-[A-Za-z0-9_-]{20,}|eyJ[A-Za-z0-9_-]{10,}\.eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}))`,
  email: String.raw`(?<email>\b[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b)`,
  iban: String.raw`(?<iban>\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?\b)`,
  ipv6: String.raw`(?<ipv6>(?<![\w:.])(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}(?![\w:]))`,
  ipv4: String.raw`(?<ipv4>\b(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\b)`,
  ssn: String.raw`(?<ssn>\b\d{3}-\d{2}-\d{4}\b)`,
  card: String.raw`(?<card>\b\d(?:[ -]?\d){12,18}\b)`,
  phone: String.raw`(?<phone>(?<![\w+])(?:\+\d{1,3}[ .-]?)?(?:\(\d{1,4}\)[ .-]?)?\d{2,4}(?:[ .-]\d{2,4}){1,4}\b)`,
  // Unknown secrets: long tokens mixing letters and digits, checked for entropy below.
  token: String.raw`(?<token>\b[A-Za-z0-9_\-+/=]{32,}\b)`,
};

/**
 * The combined pattern holds only the alternatives a document can match (cheap checks decide),
 * because each alternative costs a little at every position: email needs "@", IPv6 needs "x:y:",
 * secrets need a long token run or a PEM header. Variants are cached by which are present.
 */
const VARIANTS = new Map<number, RegExp>();
function patternFor(text: string): RegExp {
  const at = text.indexOf('@') >= 0 ? 1 : 0;
  const v6 = text.indexOf('::') >= 0 || /[0-9A-Fa-f]:[0-9A-Fa-f]{1,4}:/.test(text) ? 2 : 0;
  const long = longestTokenRun(text) >= 20 || text.indexOf('-----BEGIN') >= 0 ? 4 : 0;
  const key = at | v6 | long;
  let re = VARIANTS.get(key);
  if (!re) {
    // The always-present alternatives all start with a digit, "+", "(" or a capital letter: one
    // lookahead lets the engine reject every other position at once.
    const anchored = `(?=[0-9A-Z+(])(?:${[PARTS.iban, PARTS.ipv4, PARTS.ssn, PARTS.card, PARTS.phone].filter(Boolean).join('|')})`;
    const parts = [long ? PARTS.secret : '', at ? PARTS.email : '', v6 ? PARTS.ipv6 : '', anchored, long ? PARTS.token : ''];
    re = new RegExp(parts.filter(Boolean).join('|'), 'g');
    VARIANTS.set(key, re);
  }
  return re;
}

/** Longest run of characters that can form a key or token ([A-Za-z0-9_-+/=]). */
function longestTokenRun(s: string): number {
  let best = 0, run = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if ((c >= 97 && c <= 122) || (c >= 65 && c <= 90) || (c >= 45 && c <= 57 && c !== 46) || c === 95 || c === 43 || c === 61) {
      if (++run > best) best = run;
    } else run = 0;
  }
  return best;
}

export function luhnValid(digits: string): boolean {
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

export function ibanValid(iban: string): boolean {
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

function ipv6Valid(s: string): boolean {
  const dbl = s.split('::');
  if (dbl.length > 2) return false;
  const groups = s.split(':').filter((g) => g.length > 0);
  if (groups.some((g) => !/^[0-9A-Fa-f]{1,4}$/.test(g))) return false;
  if (dbl.length === 2) return groups.length <= 7 && !/^:[^:]|[^:]:$/.test(s);
  if (s.startsWith(':') || s.endsWith(':')) return false;
  return groups.length === 8;
}

/** Shannon entropy in bits per character. */
export function entropy(s: string): number {
  const m = new Map<string, number>();
  for (const c of s) m.set(c, (m.get(c) ?? 0) + 1);
  let h = 0;
  for (const v of m.values()) { const p = v / s.length; h -= p * Math.log2(p); }
  return h;
}

function looksLikeSecret(t: string): boolean {
  // Needs letters and digits mixed in; pure hex (hashes, UUID-ish) stays below 4 bits/char.
  if (!/\d/.test(t) || !/[A-Za-z]/.test(t)) return false;
  if (!/[A-Z]/.test(t) || !/[a-z]/.test(t)) return false;
  return entropy(t) >= 4.2;
}

function phoneValid(m: string): boolean {
  const digits = m.replace(/\D/g, '');
  if (digits.length < 7 || digits.length > 15) return false;
  // Dates and version numbers look like phone numbers: 2024-05-01, 1.2.3.4.
  if (/^\d{4}[-./]\d{1,2}[-./]\d{1,2}$/.test(m) || /^\d{1,2}[-./]\d{1,2}[-./]\d{2,4}$/.test(m)) return false;
  if (/^\d{1,3}(\.\d{1,3})+$/.test(m)) return false;
  // Without a + or parentheses, require the usual grouping of at least 3 digits at the end.
  if (!/[+(]/.test(m) && !/\d{3,}$/.test(m)) return false;
  return true;
}

export interface PiiCounts { email: number; phone: number; ip: number; creditCard: number; iban: number; nationalId: number; secret: number }
export function newPiiCounts(): PiiCounts { return { email: 0, phone: 0, ip: 0, creditCard: 0, iban: 0, nationalId: 0, secret: 0 }; }

/** Replaces PII in `text`; increments `counts` per type. Returns the original string when nothing matched. */
export function scrubPii(text: string, cfg: CleanConfig['pii'], counts: PiiCounts): string {
  const pattern = patternFor(text);
  pattern.lastIndex = 0;
  return text.replace(pattern, (m: string, ...rest: unknown[]) => {
    const g = rest[rest.length - 1] as Record<string, string | undefined>;
    const hit = (t: PiiType): string => { counts[t]++; return PLACEHOLDER[t]; };
    if (g.secret !== undefined) return cfg.secret ? hit('secret') : m;
    if (g.email !== undefined) return cfg.email ? hit('email') : m;
    if (g.iban !== undefined) return cfg.iban && ibanValid(m) ? hit('iban') : m;
    if (g.ipv6 !== undefined) return cfg.ip && ipv6Valid(m) ? hit('ip') : m;
    if (g.ipv4 !== undefined) return cfg.ip ? hit('ip') : m;
    if (g.ssn !== undefined) {
      // US SSN rules: area not 000, 666 or 9xx; group and serial not zero.
      const ok = !/^(000|666|9\d\d)|^\d{3}-00|0000$/.test(m);
      if (ok && cfg.nationalId) return hit('nationalId');
      return cfg.phone && phoneValid(m) ? hit('phone') : m;
    }
    if (g.card !== undefined) {
      const digits = m.replace(/\D/g, '');
      if (cfg.creditCard && digits.length >= 13 && luhnValid(digits)) return hit('creditCard');
      return cfg.phone && phoneValid(m) ? hit('phone') : m;
    }
    if (g.phone !== undefined) return cfg.phone && phoneValid(m) ? hit('phone') : m;
    if (g.token !== undefined) return cfg.secret && looksLikeSecret(m) ? hit('secret') : m;
    return m;
  });
}
