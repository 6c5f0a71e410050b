/**
 * Turning a token in the model's alphabet into text a person can read: byte-level tokens ("Ġlathe",
 * "Ã©") go back through GPT-2's byte-to-character table, metaspace tokens ("▁lathe") get their spaces back,
 * byte-fallback tokens ("<0xE2>") become the byte.
 */
import type { TokenizerKind } from './tokenizer';

let charToByte: Map<string, number> | undefined;

/** GPT-2's table: printable Latin-1 bytes map to themselves, the other 68 bytes to U+0100 upwards. */
export function byteLevelCharToByte(): Map<string, number> {
  if (charToByte) return charToByte;
  const m = new Map<string, number>();
  let n = 0;
  for (let b = 0; b < 256; b++) {
    const printable = (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
    m.set(String.fromCodePoint(printable ? b : 256 + n++), b);
  }
  charToByte = m;
  return m;
}

/** The UTF-8 bytes a token stands for, or undefined if it is not a plain byte/char token. */
export function tokenBytes(token: string, kind: TokenizerKind, metaspace?: string): Uint8Array | undefined {
  if (kind === 'byte-level') {
    const table = byteLevelCharToByte();
    const out: number[] = [];
    for (const ch of token) {
      const b = table.get(ch);
      if (b === undefined) return undefined;
      out.push(b);
    }
    return Uint8Array.from(out);
  }
  const m = /^<0x([0-9A-Fa-f]{2})>$/.exec(token);
  if (m) return Uint8Array.of(parseInt(m[1]!, 16));
  const text = metaspace ? token.split(metaspace).join(' ') : token;
  return new TextEncoder().encode(text);
}

/** Readable text of a token; incomplete UTF-8 shows as \xNN escapes. */
export function displayToken(token: string, kind: TokenizerKind, metaspace?: string): string {
  const bytes = tokenBytes(token, kind, metaspace);
  if (!bytes) return token;
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    return [...bytes].map((b) => (b < 0x80 ? String.fromCharCode(b) : `\\x${b.toString(16).padStart(2, '0')}`)).join('');
  }
}
