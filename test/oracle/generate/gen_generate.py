"""
Greedy-generation oracle: continuations of the tiny models by plain PyTorch (reference.py's HF-exact
forward over the whole sequence at every step, no cache), base and with a LoRA adapter (all B non-zero).

    npx tsx test/oracle/models/make_models.ts /tmp/lathe-tiny
    /usr/bin/python3 test/oracle/generate/gen_generate.py /tmp/lathe-tiny test/oracle/generate/fixtures

One JSON file per architecture:
    arch, weights_sha256 (to catch a changed tiny model), prompt (ids), steps,
    cases: [{name: "base"|"lora", lora: null | {rank, alpha, params (base64 f32, Lathe's flat layout:
             per module in layer/role order A [r, in] then B [out, r])},
             tokens (greedy ids), margins (top-1 minus top-2 logit per step),
             repetition_penalty (1 = off; "penalty" case 3, applied as transformers over prompt + output),
             logits (base64 f32 [steps, V]: the model's logits at each step, before any penalty)}]
"""
import base64
import json
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "models"))
import reference as R  # noqa: E402
from gen_fixtures import weights_sha256  # noqa: E402

ARCHS = ["llama", "llama3", "qwen2", "qwen3", "smollm3", "gpt2"]
PENALTY = 3.0  # the "penalty" case: tied-embedding tiny models otherwise repeat the last prompt token
PROMPT = [1, 57, 203, 18, 99, 311, 42, 7]
STEPS = 12
RANK, ALPHA = 4, 8.0


def b64(arr):
    return base64.b64encode(np.ascontiguousarray(arr, dtype="<f4").tobytes()).decode("ascii")


def make_lora(cfg, W, seed):
    """Lathe's flat vector and reference.Lora for the all-linear preset."""
    rng = np.random.default_rng(seed)
    flat, tensors = [], {}
    for name, fin, fout in R.lora_targets(cfg, W, "all-linear"):
        A = rng.normal(0, 1 / np.sqrt(fin), size=(RANK, fin)).astype(np.float32)
        B = rng.normal(0, 0.05, size=(fout, RANK)).astype(np.float32)
        flat += [A.reshape(-1), B.reshape(-1)]
        tensors[name] = (torch.from_numpy(A), torch.from_numpy(B))
    return np.concatenate(flat), R.Lora(tensors, ALPHA / RANK)


def greedy(cfg, W, lora, penalty=1.0):
    ids = list(PROMPT)
    tokens, margins, logits = [], [], []
    with torch.no_grad():
        for _ in range(STEPS):
            out = R.forward(cfg, W, torch.tensor([ids], dtype=torch.int64), lora)[0, -1]  # [V]
            logits.append(out.numpy().astype(np.float32).copy())
            if penalty != 1.0:
                # transformers' RepetitionPenaltyLogitsProcessor over prompt + output ids
                seen = torch.tensor(sorted(set(ids)), dtype=torch.int64)
                s = out[seen]
                out = out.clone()
                out[seen] = torch.where(s < 0, s * penalty, s / penalty)
            top = torch.topk(out, 2)
            tok = int(top.indices[0])
            tokens.append(tok)
            margins.append(float(top.values[0] - top.values[1]))
            ids.append(tok)
    return tokens, margins, np.stack(logits)


def main(src, dst):
    os.makedirs(dst, exist_ok=True)
    for arch in ARCHS:
        folder = os.path.join(src, arch)
        raw, W = R.load_model(folder)
        cfg = R.Cfg(raw)
        cases = []
        for name in ("base", "lora", "penalty"):
            lora_info, lora = None, None
            if name == "lora":
                flat, lora = make_lora(cfg, W, seed=5)
                lora_info = {"rank": RANK, "alpha": ALPHA, "params": b64(flat), "size": int(flat.size)}
            penalty = PENALTY if name == "penalty" else 1.0
            tokens, margins, logits = greedy(cfg, W, lora, penalty)
            if min(margins) < 1e-3:
                print(f"warning: {arch} {name}: a greedy step has a near-tie (margin {min(margins):.2e})")
            cases.append({"name": name, "lora": lora_info, "repetition_penalty": penalty, "tokens": tokens, "margins": margins,
                          "logits": b64(logits), "vocab": int(logits.shape[1])})
            print(f"{arch} {name}: {tokens} (min margin {min(margins):.3f})")
        with open(os.path.join(dst, f"{arch}.json"), "w") as f:
            json.dump({"arch": arch, "weights_sha256": weights_sha256(folder), "prompt": PROMPT, "steps": STEPS,
                       "torch": torch.__version__, "cases": cases}, f)
            f.write("\n")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit("usage: gen_generate.py TINY_MODELS_DIR OUT_DIR")
    main(sys.argv[1], sys.argv[2])
