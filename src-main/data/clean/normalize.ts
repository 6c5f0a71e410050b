/**
 * NFC, unified newlines, no control characters, no trailing spaces, at most one blank line in a row.
 * Tabs become spaces except at line start (keeps code indentation).
 */
// C0/C1 controls except \t \n, plus zero-width and bidi marks that only confuse tokenizers.
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f\u200b\u200e\u200f\u202a-\u202e\u2060\ufeff]/g;
const SPACES = /[\u00a0\u2000-\u200a\u202f\u205f\u3000]/g;

export function normalizeText(s: string): string {
  // One scan finds which rewrites apply: most documents need one or none, and a scan per rewrite
  // (the obvious code) costs more than the rewrites themselves.
  let rare = false, spaceRun = false, spaceNl = false, nl3 = false;
  let prev = 0, nls = 0;
  const text = s, n = s.length;
  for (let i = 0; i < n; i++) {
    const c = text.charCodeAt(i);
    if (c > 126 || (c < 32 && c !== 9 && c !== 10)) { rare = true; break; } // non-ASCII, CR, controls, DEL
    if (c === 10) {
      if (prev === 32 || prev === 9) spaceNl = true;
      if (++nls >= 3) nl3 = true;
    } else {
      if (c === 9 || (c === 32 && prev === 32)) spaceRun = true;
      nls = 0;
    }
    prev = c;
  }
  if (rare) return normalizeGeneral(s);
  if (spaceRun) s = s.replace(/(?<=\S)[ \t]{2,}/g, ' ');
  if (spaceNl) {
    s = s.replace(/[ \t]+\n/g, '\n');
    nl3 = s.indexOf('\n\n\n') >= 0; // removing spaces can join blank lines
  }
  if (nl3) s = s.replace(/\n{3,}/g, '\n\n');
  return s.trim();
}

/** Every rewrite, each when its trigger is present (non-ASCII, CR or control characters). */
function normalizeGeneral(s: string): string {
  // eslint-disable-next-line no-control-regex
  if (/[^\x00-\x7f]/.test(s)) s = s.normalize('NFC').replace(SPACES, ' ');
  if (s.indexOf('\r') >= 0) s = s.replace(/\r\n?/g, '\n');
  s = s.replace(CONTROL, '');
  if (s.indexOf('  ') >= 0 || s.indexOf('\t') >= 0) s = s.replace(/(?<=\S)[ \t]{2,}/g, ' ');
  if (s.indexOf(' \n') >= 0 || s.indexOf('\t\n') >= 0) s = s.replace(/[ \t]+\n/g, '\n');
  if (s.indexOf('\n\n\n') >= 0) s = s.replace(/\n{3,}/g, '\n\n');
  return s.trim();
}
