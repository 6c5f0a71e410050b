/** Number, duration and folder-name formatting for the wizards. */
/** A stamp for folder names: 2026-11-23_21-04-05. */
export function stamp(d = new Date()): string {
  const p = (n: number) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}_${p(d.getHours())}-${p(d.getMinutes())}-${p(d.getSeconds())}`;
}

export function fmtInt(n: number | null | undefined): string {
  return n === null || n === undefined || !Number.isFinite(n) ? '—' : Math.round(n).toLocaleString('en-US');
}

export function fmtNum(n: number | null | undefined, digits = 3): string {
  if (n === null || n === undefined || !Number.isFinite(n)) return '—';
  const a = Math.abs(n);
  return a !== 0 && (a < 1e-3 || a >= 1e6) ? n.toExponential(2) : Number(n.toPrecision(digits)).toString();
}

export function fmtDuration(s: number | null | undefined): string {
  if (s === null || s === undefined || !Number.isFinite(s)) return '—';
  const t = Math.max(0, Math.round(s));
  const h = Math.floor(t / 3600), m = Math.floor((t % 3600) / 60), sec = t % 60;
  return h ? `${h} h ${m} min` : m ? `${m} min ${sec} s` : `${sec} s`;
}

/**
 * Sizes in one unit system everywhere in the app: decimal (1 GB = 1000 MB = 10⁹ bytes), GB from 1 GB up, MB below,
 * kB for small files; three significant digits.
 */
export function fmtBytes(bytes: number | null | undefined): string {
  if (bytes === null || bytes === undefined || !Number.isFinite(bytes)) return '—';
  const a = Math.abs(bytes);
  const [v, unit] = a >= 1e9 ? [bytes / 1e9, 'GB'] : a >= 1e6 ? [bytes / 1e6, 'MB'] : a >= 1e3 ? [bytes / 1e3, 'kB'] : [bytes, 'bytes'];
  const digits = unit === 'bytes' ? String(Math.round(v)) : Number(v.toPrecision(3)).toLocaleString('en-US', { maximumFractionDigits: 2 });
  return `${digits} ${unit}`;
}

/** A size the services give in MiB (memory estimates: 2^20 bytes) in the app's decimal units. */
export function fmtMiB(mib: number | null | undefined): string {
  return mib === null || mib === undefined ? '—' : fmtBytes(mib * 2 ** 20);
}

/** A duration estimate in plain words, rounded to what matters: "about 40 s", "about 12 min", "about 3 h 20 min". */
export function fmtAbout(s: number | null | undefined): string {
  if (s === null || s === undefined || !Number.isFinite(s)) return '—';
  if (s < 60) return `about ${Math.max(1, Math.round(s))} s`;
  if (s < 3600) return `about ${Math.round(s / 60)} min`;
  const h = Math.floor(s / 3600), m = Math.round((s % 3600) / 60);
  return m === 60 ? `about ${h + 1} h` : `about ${h} h${m ? ` ${m} min` : ''}`;
}

/** A clock time (14:05) for "started at" / "ends at". */
export function fmtClock(d: Date | string | number): string {
  const t = new Date(d);
  return Number.isNaN(t.getTime()) ? '—' : `${String(t.getHours()).padStart(2, '0')}:${String(t.getMinutes()).padStart(2, '0')}`;
}
