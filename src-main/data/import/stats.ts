/** What import saw, for the report: every skipped file and bad line is named so the user can fix it. */
export interface ImportStats {
  filesRead: number;
  filesSkipped: { path: string; reason: string }[];
  bytesRead: number;
  docs: number;
  chars: number;
  /** Invalid byte sequences replaced by U+FFFD. */
  repairedChars: number;
  /** Files per detected encoding, e.g. { 'utf-8': 10, 'windows-1252': 1 }. */
  encodings: Record<string, number>;
  /** Bad JSONL lines / CSV rows; the first 100 are listed, `badLineCount` counts all. */
  badLines: { path: string; line: number; error: string }[];
  badLineCount: number;
}

export function newImportStats(): ImportStats {
  return { filesRead: 0, filesSkipped: [], bytesRead: 0, docs: 0, chars: 0, repairedChars: 0, encodings: {}, badLines: [], badLineCount: 0 };
}

export function addBadLine(stats: ImportStats, path: string, line: number, error: string): void {
  stats.badLineCount++;
  if (stats.badLines.length < 100) stats.badLines.push({ path, line, error });
}
