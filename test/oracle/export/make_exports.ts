/**
 * Writes the export oracle inputs: for each case a tiny base model, a hand-made run, and OUR merged and
 * PEFT exports of it, plus cases.json. Then gen_fixture.py reads them with PyTorch:
 *
 *   npx tsx test/oracle/export/make_exports.ts /tmp/lathe-export-oracle
 *   /usr/bin/python3 test/oracle/export/gen_fixture.py /tmp/lathe-export-oracle test/oracle/export/fixtures
 */
import { writeFileSync, existsSync } from 'node:fs';
import path from 'node:path';
import { EXPORT_CASES, buildCase } from './cases';

async function main(root: string): Promise<void> {
  if (existsSync(root)) throw new Error(`${root} exists; choose a new folder.`);
  const out: Record<string, unknown>[] = [];
  for (const c of EXPORT_CASES) {
    const b = await buildCase(c, root);
    out.push({ ...c, base: b.base, merged: b.merged, peft: b.peft, verification: b.mergedResult.verification });
    console.log(`${c.name}: merged ${b.mergedResult.files.join(', ')}; engine check rel ${b.mergedResult.verification?.relError.toExponential(2)}`);
  }
  writeFileSync(path.join(root, 'cases.json'), JSON.stringify(out, null, 2));
}

main(process.argv[2] ?? '/tmp/lathe-export-oracle').catch((e) => { console.error(e); process.exit(1); });
