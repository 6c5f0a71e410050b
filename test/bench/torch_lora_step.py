"""
PyTorch baseline for `npm run bench`: the same LoRA training step Lathe runs (forward, masked CE, backward into
LoRA A/B only, AdamW), on the same tiny model folder, with the pure-torch reference forward
(test/oracle/models/reference.py). Prints one JSON line.

    /usr/bin/python3 test/bench/torch_lora_step.py MODEL_DIR B T STEPS RANK ALPHA [WARMUP]

peak_rss is this process's peak resident set (getrusage), for the memory rows of test/bench/realsize.ts.
"""
import json
import os
import resource
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "oracle", "models"))
import reference as R  # noqa: E402


def main(folder, B, T, steps, rank, alpha, warmup=2):
    torch.set_num_threads(int(os.environ.get("LATHE_BENCH_THREADS", "2")))
    raw, W = R.load_model(folder)
    cfg = R.Cfg(raw)
    g = torch.Generator().manual_seed(0)
    params = {}
    for name, fin, fout in R.lora_targets(cfg, W, "all-linear"):
        A = ((torch.rand(rank, fin, generator=g) * 2 - 1) / fin ** 0.5).requires_grad_(True)
        Bm = (torch.randn(fout, rank, generator=g) * 0.01).requires_grad_(True)
        params[name] = (A, Bm)
    flat = [t for ab in params.values() for t in ab]
    lora = R.Lora(params, alpha / rank)
    opt = torch.optim.AdamW(flat, lr=1e-4, weight_decay=0.0)
    ids = torch.randint(0, cfg.V, (B, T + 1), generator=g)
    x, y = ids[:, :-1].contiguous(), ids[:, 1:].contiguous()
    mask = torch.ones(B, T)

    def step():
        opt.zero_grad()
        loss = R.masked_ce(R.forward(cfg, W, x, lora), y, mask)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(flat, 1.0)
        opt.step()
        return float(loss)

    for _ in range(warmup):
        step()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    dt = (time.perf_counter() - t0) / steps
    blas = torch.__config__.show()
    print(json.dumps({"ms_per_step": dt * 1000, "tokens_per_s": B * T / dt, "torch": torch.__version__,
                      "threads": torch.get_num_threads(), "trainable": sum(t.numel() for t in flat),
                      "peak_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
                      "blas": "openblas" if "openblas" in blas.lower() or os.path.realpath("/usr/lib/x86_64-linux-gnu/libblas.so.3").find("openblas") >= 0 else "other"}))


if __name__ == "__main__":
    a = sys.argv
    main(a[1], int(a[2]), int(a[3]), int(a[4]), int(a[5]), float(a[6]), int(a[7]) if len(a) > 7 else 2)
