"""
Preference-tuning parity fixtures (DPO sigmoid, DPO with label smoothing, IPO, ORPO) written from the
published formulas, in PyTorch, on the tiny models of test/oracle/models (same fixture file format,
version 1, read by test/unit/engine/models/fixture.ts):

    npx tsx test/oracle/models/make_models.ts /tmp/lathe-tiny
    /usr/bin/python3 test/oracle/preference/gen_fixtures.py /tmp/lathe-tiny test/oracle/preference/fixtures

Rows: P pairs -> R = 2P rows, the P chosen completions first, then the P rejected ones (row p and row
P + p are one pair; each pair shares its prompt tokens). mask [R, T] marks positions whose next token is
a completion token. logp[r] = sum_t mask * log_softmax(logits)[label].

    DPO sigmoid  h = (pi_c - ref_c) - (pi_r - ref_r);  (1 - eps) * -logsigmoid(beta h) + eps * -logsigmoid(-beta h)
    IPO          (h - 1 / (2 beta))^2
    ORPO         a = logp / tokens;  lo = a - log(1 - exp(a));  -a_c + lam * -logsigmoid(lo_c - lo_r)

The reference is the same model without LoRA. The step loss is the mean over pairs. Tensors: input_ids,
labels (i32 [R, T]), loss_mask [R, T], loss [1], logps, ref_logps [R], lora_/grad_/final_ A and B per
module (B non-zero, so A has a gradient), adamw_losses, adamw_grad_norms [10].
"""
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "models"))
import reference as R  # noqa: E402
from gen_fixtures import ADAM, RANK, ALPHA, tokenizer_size, weights_sha256, write_fixture  # noqa: E402

P, T = 2, 10
# (fixture name, model folder, rsLoRA, loss settings)
CASES = [
    ("llama-dpo", "llama", False, {"method": "dpo", "loss": "sigmoid", "beta": 0.5, "label_smoothing": 0.0, "orpo_lambda": 0.0}),
    ("llama-dpo-smooth", "llama", False, {"method": "dpo", "loss": "sigmoid", "beta": 0.5, "label_smoothing": 0.2, "orpo_lambda": 0.0}),
    ("llama-ipo", "llama", False, {"method": "dpo", "loss": "ipo", "beta": 0.5, "label_smoothing": 0.0, "orpo_lambda": 0.0}),
    ("llama-orpo", "llama", False, {"method": "orpo", "loss": "sigmoid", "beta": 0.0, "label_smoothing": 0.0, "orpo_lambda": 0.5}),
    ("qwen2-dpo-rslora", "qwen2", True, {"method": "dpo", "loss": "sigmoid", "beta": 0.3, "label_smoothing": 0.0, "orpo_lambda": 0.0}),
]


def row_logps(logits, labels, mask):
    lp = torch.log_softmax(logits, -1).gather(-1, labels.unsqueeze(-1)).squeeze(-1)  # [R, T]
    return (lp * mask).sum(-1)  # [R]


def pref_loss(hp, pol, ref, mask):
    pc, pr = pol[:P], pol[P:]
    if hp["method"] == "dpo":
        h = (pc - ref[:P]) - (pr - ref[P:])
        if hp["loss"] == "ipo":
            losses = (h - 1 / (2 * hp["beta"])) ** 2
        else:
            z, eps = hp["beta"] * h, hp["label_smoothing"]
            losses = -(1 - eps) * F.logsigmoid(z) - eps * F.logsigmoid(-z)
    else:
        a = pol / mask.sum(-1)
        lo = a - torch.log1p(-torch.exp(a))
        losses = -a[:P] - hp["orpo_lambda"] * F.logsigmoid(lo[:P] - lo[P:])
    return losses.mean()


def make_batch(g, vocab):
    """Pairs sharing a prompt, completions of different lengths, padding at the end of each row."""
    ids = torch.zeros(2 * P, T, dtype=torch.int64)
    labels = torch.zeros(2 * P, T, dtype=torch.int64)
    mask = torch.zeros(2 * P, T)
    for p in range(P):
        prompt = torch.randint(0, vocab, (3 + p,), generator=g)
        for side, n in ((0, 5 + p), (1, 4 + 2 * p)):
            comp = torch.randint(0, vocab, (n,), generator=g)
            seq = torch.cat([prompt, comp])[: T + 1]
            row = side * P + p
            L = seq.shape[0]
            ids[row, : L - 1] = seq[:-1]
            labels[row, : L - 1] = seq[1:]
            # position t predicts seq[t + 1]; a completion token when t + 1 >= len(prompt)
            mask[row, len(prompt) - 1 : L - 1] = 1
    return ids, labels, mask


def main(models_dir, out_dir):
    os.makedirs(out_dir, exist_ok=True)
    torch.manual_seed(0)
    for ci, (name, sub, rs, hp) in enumerate(CASES):
        folder = os.path.join(models_dir, sub)
        raw, W = R.load_model(folder)
        cfg = R.Cfg(raw)
        g = torch.Generator().manual_seed(2000 + ci)
        ids, labels, mask = make_batch(g, tokenizer_size(folder))
        targets = R.lora_targets(cfg, W, "all-linear")
        scale = ALPHA / (RANK ** 0.5) if rs else ALPHA / RANK
        init = {}
        for mod, fin, fout in targets:
            A = (torch.rand(RANK, fin, generator=g) * 2 - 1) / (fin ** 0.5)
            Bm = torch.randn(fout, RANK, generator=g) * 0.05  # non-zero, so A gets a gradient
            init[mod] = (A, Bm)
        with torch.no_grad():
            ref = row_logps(R.forward(cfg, W, ids), labels, mask)

        params = {n: (a.clone().requires_grad_(True), b.clone().requires_grad_(True)) for n, (a, b) in init.items()}
        pol = row_logps(R.forward(cfg, W, ids, R.Lora(params, scale)), labels, mask)
        loss = pref_loss(hp, pol, ref, mask)
        loss.backward()
        grads = {n: (a.grad.detach().clone(), b.grad.detach().clone()) for n, (a, b) in params.items()}

        params = {n: (a.clone().requires_grad_(True), b.clone().requires_grad_(True)) for n, (a, b) in init.items()}
        flat = [t for n, _, _ in targets for t in params[n]]
        opt = torch.optim.AdamW(flat, lr=ADAM["lr"], betas=(ADAM["beta1"], ADAM["beta2"]), eps=ADAM["eps"], weight_decay=ADAM["weight_decay"])
        lora = R.Lora(params, scale)
        losses, norms = [], []
        for _ in range(ADAM["steps"]):
            opt.zero_grad()
            l = pref_loss(hp, row_logps(R.forward(cfg, W, ids, lora), labels, mask), ref, mask)
            l.backward()
            norms.append(float(torch.nn.utils.clip_grad_norm_(flat, ADAM["max_grad_norm"])))
            losses.append(float(l))
            opt.step()

        tensors = [
            ("input_ids", ids.numpy().astype(np.int32)),
            ("labels", labels.numpy().astype(np.int32)),
            ("loss_mask", mask.numpy().astype(np.float32)),
            ("loss", np.array([float(loss)], dtype=np.float32)),
            ("logps", pol.detach().numpy().astype(np.float32)),
            ("ref_logps", ref.numpy().astype(np.float32)),
        ]
        for n, _, _ in targets:
            a, b = init[n]
            ga, gb = grads[n]
            fa, fb = params[n]
            tensors += [(f"lora_A.{n}", a.numpy()), (f"lora_B.{n}", b.numpy()),
                        (f"grad_A.{n}", ga.numpy()), (f"grad_B.{n}", gb.numpy()),
                        (f"final_A.{n}", fa.detach().numpy()), (f"final_B.{n}", fb.detach().numpy())]
        tensors += [("adamw_losses", np.array(losses, dtype=np.float32)),
                    ("adamw_grad_norms", np.array(norms, dtype=np.float32))]
        header = {
            "arch": name, "architecture": raw["architectures"][0], "model_sha256": weights_sha256(folder), "model_seed": 0,
            "model": {"arch": sub, "seed": 0, "dtype": "f32"},
            "batch": 2 * P, "time": T, "vocab": cfg.V, "torch": torch.__version__,
            "lora": {"rank": RANK, "alpha": ALPHA, "rslora": rs, "scale": scale, "dropout": 0.0,
                     "targets": [{"module": n, "in": fi, "out": fo} for n, fi, fo in targets]},
            "adamw": ADAM, "final_loss": losses[-1], "preference": hp,
        }
        path = os.path.join(out_dir, f"{name}.fixture")
        write_fixture(path, header, tensors)
        print(f"{name}: loss {float(loss):.6f}, logps {pol.detach().numpy().round(3).tolist()}, "
              f"ref {ref.numpy().round(3).tolist()}; after 10 AdamW steps {losses[-1]:.6f}; {os.path.getsize(path)} bytes")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
