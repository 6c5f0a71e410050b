/**
 * Our exports against PyTorch (test/oracle/export/gen_fixture.py): the merged safetensors, loaded by a
 * pure-torch Hugging Face-equivalent forward, give the logits the engine gives; and PEFT's formula
 * applied to our adapter files reproduces the merged weights.
 */
import { describe, expect, it } from 'vitest';
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { readModelFixture } from '../engine/models/fixture';
import { EXPORT_CASES, buildCase } from '../../oracle/export/cases';
import { engineLogits, openModelForTest, peftLora } from './oracle-helpers';
import { tempDir } from '../../helpers/services';

const FIXTURES = path.resolve(__dirname, '../../oracle/export/fixtures');

function sha256(folder: string): string {
  const h = createHash('sha256');
  for (const f of readdirSync(folder).filter((x) => x.endsWith('.safetensors')).sort()) h.update(readFileSync(path.join(folder, f)));
  return h.digest('hex');
}

function maxDiff(a: Float32Array, b: Float32Array): { abs: number; rel: number } {
  let d = 0, m = 0;
  for (let i = 0; i < a.length; i++) { d = Math.max(d, Math.abs(a[i]! - b[i]!)); m = Math.max(m, Math.abs(b[i]!)); }
  return { abs: d, rel: d / m };
}

describe('export oracle (PyTorch fixtures)', () => {
  for (const c of EXPORT_CASES) {
    it(`${c.name}: torch on our merged files = engine logits; PEFT formula on our adapter = our merge`, async () => {
      const fx = readModelFixture(path.join(FIXTURES, `${c.name}.fixture`));
      const h = fx.header as unknown as {
        merged_sha256: string; merged_files: string[]; dtype: string;
        weights: { worst: number; unit: string; not_bit_equal: number; checked: number };
        peft: { fan_in_fan_out: boolean; target_modules: string[] };
      };
      const b = await buildCase(c, tempDir('lathe-exp-oracle-'));
      // The same bytes the fixture was computed from (exports are deterministic).
      expect(readdirSync(b.merged).filter((f) => f.endsWith('.safetensors')).sort()).toEqual(h.merged_files);
      expect(sha256(b.merged)).toBe(h.merged_sha256);
      const ids = Array.from(fx.i32('input_ids'));
      expect(ids).toEqual(c.ids);

      const tol = c.dtype === 'f32' ? 1e-5 : 1e-4;
      // 1. torch reading our merged files vs the engine reading them.
      const merged = await engineLogits(b.merged, ids, null);
      const m = maxDiff(merged.logits, fx.f32('logits_merged'));
      expect(m.rel, `merged: max |Δ| ${m.abs}`).toBeLessThan(tol);
      // 2. torch's unmerged base + PEFT adapter vs the engine's base + our adapter read back from PEFT files.
      const { config, layout } = await openModelForTest(b.base);
      const peft = await engineLogits(b.base, ids, await peftLora(b.peft, config, layout));
      const p = maxDiff(peft.logits, fx.f32('logits_peft'));
      expect(p.rel, `peft: max |Δ| ${p.abs}`).toBeLessThan(1e-5);
      // 3. PEFT's merge formula reproduced our merged weights (checked in Python, recorded here).
      if (h.weights.unit === 'abs') expect(h.weights.worst).toBeLessThan(1e-6);
      else expect(h.weights.not_bit_equal / h.weights.checked).toBeLessThan(1e-3); // bf16: rare 1-ulp flips from f32 vs f64 sums
      expect(h.peft.fan_in_fan_out).toBe(c.arch === 'gpt2');
    });
  }
});
