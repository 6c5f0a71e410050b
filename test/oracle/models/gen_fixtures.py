"""
Writes one parity fixture per tiny architecture (llm.c style): inputs, base and LoRA logits, masked
loss, every LoRA gradient (B non-zero), and 10 AdamW steps with gradient clipping.

    npx tsx test/oracle/models/make_models.ts /tmp/lathe-tiny
    /usr/bin/python3 test/oracle/models/gen_fixtures.py /tmp/lathe-tiny test/oracle/models/fixtures [NAME,NAME...]

With a third argument only the named fixtures are (re)written (each fixture's random draws depend only on
its index in MODELS, so the others stay byte-identical).

File format (little-endian), version 1:
    8 bytes  magic "LATHEFIX"
    u32      version (1)
    u32      N, length of the JSON header
    N bytes  JSON header (space-padded so data starts 8-byte aligned), with
             "tensors": [{name, dtype ("f32"|"i32"), shape, offset (from data start), bytes}]
    data
"""
import hashlib
import json
import os
import struct
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import reference as R  # noqa: E402

MAGIC = b"LATHEFIX"
VERSION = 1
ARCHS = ["llama", "llama3", "tinyllama", "smollm2", "mistral", "qwen2", "qwen3", "smollm3", "gpt2"]
# issue 17's families, after the older fixtures so those keep their index (and random draws)
NEW_ARCHS = ["granite", "mistral-nemo", "olmo2", "gemma2", "gemma3", "phi3", "phi4mini"]
# (fixture name, folder from make_models.ts, how make_models.ts created it)
MODELS = [(a, a, {"arch": a, "seed": 0, "dtype": "f32"}) for a in ARCHS] + [
    ("llama-bf16-sharded", "llama-bf16-sharded", {"arch": "llama", "seed": 0, "dtype": "bf16", "max_shard_bytes": 100000}),
    ("llama-f16", "llama-f16", {"arch": "llama", "seed": 0, "dtype": "f16"}),
] + [(a, a, {"arch": a, "seed": 0, "dtype": "f32"}) for a in NEW_ARCHS]


def weights_sha256(folder):
    """sha256 over the weight files' bytes, in sorted file-name order."""
    h = hashlib.sha256()
    for fn in sorted(f for f in os.listdir(folder) if f.endswith(".safetensors")):
        with open(os.path.join(folder, fn), "rb") as f:
            h.update(f.read())
    return h.hexdigest()
B, T = 2, 8
RANK, ALPHA = 4, 8.0
RSLORA = {"qwen2", "gpt2"}  # these use alpha / sqrt(r); the rest alpha / r
ADAM = {"lr": 1e-2, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8, "weight_decay": 0.01, "max_grad_norm": 1.0, "steps": 10}


def tokenizer_size(folder):
    with open(os.path.join(folder, "tokenizer.json")) as f:
        t = json.load(f)
    ids = list(t["model"]["vocab"].values()) + [a["id"] for a in t.get("added_tokens", [])]
    return max(ids) + 1


def write_fixture(path, header, tensors):
    body, entries, off = [], [], 0
    for name, arr in tensors:
        arr = np.ascontiguousarray(arr)
        dt = {np.dtype(np.float32): "f32", np.dtype(np.int32): "i32"}[arr.dtype]
        raw = arr.astype(arr.dtype.newbyteorder("<")).tobytes()
        entries.append({"name": name, "dtype": dt, "shape": list(arr.shape), "offset": off, "bytes": len(raw)})
        body.append(raw)
        off += len(raw)
    header = dict(header, tensors=entries)
    hj = json.dumps(header, separators=(",", ":")).encode("utf-8")
    pad = (-(8 + 4 + 4 + len(hj))) % 8
    hj += b" " * pad
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(MAGIC + struct.pack("<II", VERSION, len(hj)) + hj)
        for raw in body:
            f.write(raw)
    os.replace(tmp, path)


def check_loader(models_dir):
    """Our TS writer's f16/bf16 rounding must equal torch's, and sharded folders must load whole."""
    _, w32 = R.load_model(os.path.join(models_dir, "llama"))
    _, wbf = R.load_model(os.path.join(models_dir, "llama-bf16-sharded"))
    _, w16 = R.load_model(os.path.join(models_dir, "llama-f16"))
    assert os.path.exists(os.path.join(models_dir, "llama-bf16-sharded", "model.safetensors.index.json"))
    assert sorted(w32) == sorted(wbf) == sorted(w16), "tensor names differ between dtypes"
    for n, t in w32.items():
        assert torch.equal(wbf[n], t.to(torch.bfloat16).float()), f"bf16 rounding differs from torch for {n}"
        assert torch.equal(w16[n], t.half().float()), f"f16 rounding differs from torch for {n}"
    print(f"loader check: {len(w32)} tensors; bf16 (sharded) and f16 files equal torch's rounding of the f32 model")


def main(models_dir, out_dir, only=None):
    os.makedirs(out_dir, exist_ok=True)
    check_loader(models_dir)
    torch.manual_seed(0)
    for ai, (arch, sub, made) in enumerate(MODELS):
        if only is not None and arch not in only:
            continue
        folder = os.path.join(models_dir, sub)
        raw, W = R.load_model(folder)
        cfg = R.Cfg(raw)
        sha = weights_sha256(folder)
        g = torch.Generator().manual_seed(1000 + ai)
        vt = tokenizer_size(folder)
        block = torch.randint(0, vt, (B, T + 1), generator=g)
        ids, labels = block[:, :-1].contiguous(), block[:, 1:].contiguous()
        # SFT-like mask: row 0 ignores a 3-token "prompt", row 1 ignores its last 2 tokens.
        mask = torch.ones(B, T)
        mask[0, :3] = 0
        mask[1, -2:] = 0

        targets = R.lora_targets(cfg, W, "all-linear")
        rs = arch in RSLORA
        scale = ALPHA / (RANK ** 0.5) if rs else ALPHA / RANK
        lora_init = {}
        for name, fin, fout in targets:
            A = (torch.rand(RANK, fin, generator=g) * 2 - 1) / (fin ** 0.5)  # kaiming-uniform-like
            Bm = torch.randn(fout, RANK, generator=g) * 0.05  # non-zero, so A gets a gradient
            lora_init[name] = (A, Bm)

        with torch.no_grad():
            logits_base = R.forward(cfg, W, ids)

        params = {n: (a.clone().requires_grad_(True), b.clone().requires_grad_(True)) for n, (a, b) in lora_init.items()}
        lora = R.Lora(params, scale)
        logits = R.forward(cfg, W, ids, lora)
        loss = R.masked_ce(logits, labels, mask)
        loss.backward()
        grads = {n: (a.grad.detach().clone(), b.grad.detach().clone()) for n, (a, b) in params.items()}

        # 10 AdamW steps on the same batch, global-norm clipping before each step.
        params = {n: (a.clone().requires_grad_(True), b.clone().requires_grad_(True)) for n, (a, b) in lora_init.items()}
        flat = [t for n, _, _ in targets for t in params[n]]
        opt = torch.optim.AdamW(flat, lr=ADAM["lr"], betas=(ADAM["beta1"], ADAM["beta2"]), eps=ADAM["eps"],
                                weight_decay=ADAM["weight_decay"])
        lora = R.Lora(params, scale)
        losses, norms = [], []
        for _ in range(ADAM["steps"]):
            opt.zero_grad()
            l = R.masked_ce(R.forward(cfg, W, ids, lora), labels, mask)
            l.backward()
            norms.append(float(torch.nn.utils.clip_grad_norm_(flat, ADAM["max_grad_norm"])))
            losses.append(float(l))
            opt.step()
        with torch.no_grad():
            final_loss = float(R.masked_ce(R.forward(cfg, W, ids, lora), labels, mask))

        tensors = [
            ("input_ids", ids.numpy().astype(np.int32)),
            ("labels", labels.numpy().astype(np.int32)),
            ("loss_mask", mask.numpy().astype(np.float32)),
            ("logits_base", logits_base.numpy().astype(np.float32)),
            ("logits", logits.detach().numpy().astype(np.float32)),
            ("loss", np.array([float(loss)], dtype=np.float32)),
        ]
        for n, _, _ in targets:
            a, b = lora_init[n]
            ga, gb = grads[n]
            fa, fb = params[n]
            tensors += [(f"lora_A.{n}", a.numpy()), (f"lora_B.{n}", b.numpy()),
                        (f"grad_A.{n}", ga.numpy()), (f"grad_B.{n}", gb.numpy()),
                        (f"final_A.{n}", fa.detach().numpy()), (f"final_B.{n}", fb.detach().numpy())]
        tensors += [("adamw_losses", np.array(losses, dtype=np.float32)),
                    ("adamw_grad_norms", np.array(norms, dtype=np.float32))]
        header = {
            "arch": arch, "architecture": raw["architectures"][0], "model_sha256": sha, "model_seed": 0, "model": made,
            "batch": B, "time": T, "vocab": cfg.V, "torch": torch.__version__,
            "lora": {"rank": RANK, "alpha": ALPHA, "rslora": rs, "scale": scale, "dropout": 0.0,
                     "targets": [{"module": n, "in": fi, "out": fo} for n, fi, fo in targets]},
            "adamw": ADAM, "final_loss": final_loss,
        }
        path = os.path.join(out_dir, f"{arch}.fixture")
        write_fixture(path, header, tensors)
        print(f"{arch}: loss {float(loss):.6f} -> after {ADAM['steps']} AdamW steps {final_loss:.6f}; "
              f"{os.path.getsize(path)} bytes")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3].split(",") if len(sys.argv) > 3 else None)
