"""
PyTorch oracle for Lathe's exports (no transformers/peft needed: pure torch + the models oracle's
reference forward, test/oracle/models/reference.py).

For every case written by make_exports.ts it
  1. loads OUR merged safetensors folder (single file or sharded) and computes logits with the reference
     forward: a Hugging Face loader would see exactly these tensors;
  2. loads the base model and OUR PEFT adapter (adapter_config.json + adapter_model.safetensors), applies
     PEFT's merge formula W + scaling * (B @ A) (transposed when fan_in_fan_out), scaling = lora_alpha / r
     or lora_alpha / sqrt(r) with use_rslora, and checks it reproduces the merged weights (f32: to 1e-6;
     bf16: after torch's own f32 -> bf16 rounding, allowing 1 ulp where f32 sums round differently);
  3. computes logits of base + adapter unmerged (y = x W^T + scaling * (x A^T) B^T, PEFT's forward).

    npx tsx test/oracle/export/make_exports.ts /tmp/lathe-export-oracle
    /usr/bin/python3 test/oracle/export/gen_fixture.py /tmp/lathe-export-oracle test/oracle/export/fixtures

Writes <case>.fixture in the models oracle's LATHEFIX format (version 1) with tensors input_ids (i32
[1, T]), logits_merged and logits_peft (f32 [1, T, V]) and a header holding the merged files' sha256 and
the weight comparison.
"""
import hashlib
import json
import math
import os
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "models"))
import reference as R  # noqa: E402
import gen_fixtures as G  # noqa: E402  (write_fixture: the shared fixture format)

PREFIX = "base_model.model."


def merged_sha256(folder):
    """sha256 over the merged weight files' bytes, in sorted file-name order."""
    h = hashlib.sha256()
    for fn in sorted(f for f in os.listdir(folder) if f.endswith(".safetensors")):
        with open(os.path.join(folder, fn), "rb") as f:
            h.update(f.read())
    return h.hexdigest()


def load_peft(folder):
    with open(os.path.join(folder, "adapter_config.json")) as f:
        cfg = json.load(f)
    tensors, _ = R.read_safetensors(os.path.join(folder, "adapter_model.safetensors"))
    r, alpha = cfg["r"], cfg["lora_alpha"]
    scaling = alpha / math.sqrt(r) if cfg.get("use_rslora") else alpha / r
    pairs = {}
    for k, v in tensors.items():
        assert k.startswith(PREFIX), k
        if k.endswith(".lora_A.weight"):
            pairs.setdefault(k[len(PREFIX):-len(".lora_A.weight")], [None, None])[0] = v
        elif k.endswith(".lora_B.weight"):
            pairs.setdefault(k[len(PREFIX):-len(".lora_B.weight")], [None, None])[1] = v
    return cfg, scaling, pairs


def bf16_round(x):
    return x.to(torch.bfloat16).to(torch.float32)


def main(root, out_dir):
    with open(os.path.join(root, "cases.json")) as f:
        cases = json.load(f)
    os.makedirs(out_dir, exist_ok=True)
    for c in cases:
        raw_m, Wm = R.load_model(c["merged"])
        raw_b, Wb = R.load_model(c["base"])
        cfg_m = R.Cfg(raw_m)
        pcfg, scaling, pairs = load_peft(c["peft"])
        assert pcfg["peft_type"] == "LORA" and pcfg["task_type"] == "CAUSAL_LM" and pcfg["bias"] == "none"
        fan_in_fan_out = bool(pcfg["fan_in_fan_out"])
        assert fan_in_fan_out == (cfg_m.family == "gpt2")
        # Every adapted module must be selected by target_modules, PEFT's way (exact or "." + suffix).
        for module in pairs:
            assert any(module == t or module.endswith("." + t) for t in pcfg["target_modules"]), module

        worst_w, mismatched, not_equal, checked = 0.0, 0, 0, 0
        for module, (A, B) in sorted(pairs.items()):
            name = module + ".weight"
            delta = (B @ A) * scaling  # [out, in]
            if fan_in_fan_out:
                delta = delta.t()  # Conv1D stores [in, out]
            ref = Wb[name] + delta
            got = Wm[name]
            if c["dtype"] == "bf16":
                ref = bf16_round(ref)
                # one bf16 ulp at the value's magnitude
                ulp = torch.abs(ref) * 2.0 ** -7 + 1e-30
                bad = torch.abs(got - ref) > ulp
                mismatched += int(bad.sum())
                worst_w = max(worst_w, float((torch.abs(got - ref) / ulp).max()))
            else:
                worst_w = max(worst_w, float(torch.abs(got - ref).max()))
            not_equal += int((got != ref).sum())
            checked += ref.numel()
        limit = 1.0 if c["dtype"] == "bf16" else 1e-6  # bf16: in ulps; f32: absolute
        if worst_w > limit:
            raise SystemExit(f"{c['name']}: merged weights differ from PEFT's formula by {worst_w} (limit {limit})")
        # Tensors outside the adapter are unchanged (up to the dtype conversion).
        for name, w in Wb.items():
            if name.rsplit(".", 1)[0] in pairs or name not in Wm:
                continue
            want = bf16_round(w) if c["dtype"] == "bf16" else w
            assert torch.equal(Wm[name], want), name

        ids = torch.tensor([c["ids"]], dtype=torch.int64)
        with torch.no_grad():
            logits_merged = R.forward(cfg_m, Wm, ids)
            lora = R.Lora({m: (A, B) for m, (A, B) in pairs.items()}, scaling)
            logits_peft = R.forward(R.Cfg(raw_b), Wb, ids, lora)
        d = float(torch.abs(logits_merged - logits_peft).max())
        rel = d / float(torch.abs(logits_peft).max())
        print(f"{c['name']}: {len(pairs)} modules, {checked} weights; worst weight diff {worst_w:.3g}"
              f"{' ulp' if c['dtype'] == 'bf16' else ''} ({not_equal} not bit-equal); merged vs unmerged logits max {d:.3g} (rel {rel:.3g})")
        header = {
            "case": c["name"], "arch": c["arch"], "dtype": c["dtype"], "torch": torch.__version__,
            "merged_sha256": merged_sha256(c["merged"]),
            "merged_files": sorted(f for f in os.listdir(c["merged"]) if f.endswith(".safetensors")),
            "peft": {"r": pcfg["r"], "lora_alpha": pcfg["lora_alpha"], "use_rslora": pcfg["use_rslora"],
                     "fan_in_fan_out": fan_in_fan_out, "scaling": scaling, "modules": len(pairs),
                     "target_modules": pcfg["target_modules"]},
            "weights": {"checked": checked, "worst": worst_w, "unit": "ulp" if c["dtype"] == "bf16" else "abs", "over_one_ulp": mismatched,
                        "not_bit_equal": not_equal},
            "merged_vs_peft_logits": {"max_abs": d, "rel": rel},
        }
        G.write_fixture(os.path.join(out_dir, f"{c['name']}.fixture"), header, [
            ("input_ids", ids.to(torch.int32).numpy()),
            ("logits_merged", logits_merged.to(torch.float32).numpy()),
            ("logits_peft", logits_peft.to(torch.float32).numpy()),
        ])


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit("usage: gen_fixture.py EXPORTS_DIR OUT_DIR   (EXPORTS_DIR from make_exports.ts)")
    main(sys.argv[1], sys.argv[2])
