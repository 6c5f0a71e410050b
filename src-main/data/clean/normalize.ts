/**
 * NFC, unified newlines, no control characters, no trailing spaces, at most one blank line in a row.
 * Tabs become spaces except at line start (keeps code indentation).
 */
// C0/C1 controls except \t \n, plus zero-width and bidi marks that only confuse tokenizers.
const CONTROL = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f\u200b\u200e\u200f\u202a-\u202e\u2060\ufeff]/g;
const SPACES = /[\u00a0\u2000-\u200a\u202f\u205f\u3000]/g;

export function normalizeText(s: string): string {
  // Fast path: ASCII is already NFC.
  // eslint-disable-next-line no-control-regex
  if (/[^\x00-\x7f]/.test(s)) s = s.normalize('NFC').replace(SPACES, ' ');
  if (s.indexOf('\r') >= 0) s = s.replace(/\r\n?/g, '\n');
  s = s.replace(CONTROL, '');
  s = s.replace(/(?<=\S)[ \t]{2,}/g, ' ').replace(/[ \t]+\n/g, '\n').replace(/\n{3,}/g, '\n\n');
  return s.trim();
}
