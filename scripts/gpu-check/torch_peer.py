"""
The PyTorch peer of the real-GPU check (scripts/gpu-check): the same LoRA step on the same model folder
(written by `gpu-check.mjs gen`), same batch x seqLen, rank 16 / alpha 32 on all linear layers of the
decoder (q,k,v,o,gate,up,down; not lm_head), AdamW (lr 1e-4, no weight decay), grad-norm clip 1.0.
One JSON line per (model, T).

    python3 torch_peer.py ROOT MODEL[,MODEL...] [--T 2048,512] [--B 1] [--steps 3] [--dtype bf16|fp32] [--recompute on|off]

With transformers + peft (the GPU machine): AutoModelForCausalLM (sdpa attention) + PEFT LoraConfig,
weights and compute in --dtype, on CUDA, gradient checkpointing when --recompute on; memory is
torch.cuda.max_memory_allocated. The 8B row loads the base in --dtype, not 4-bit: bitsandbytes is not
installed there, so its memory is a bf16-LoRA figure, not QLoRA's (the row says base_dtype).
Without them (this project's CPU machines: Debian python3-torch only), a plain-PyTorch LoRA of the same math
on the project's reference forward (test/oracle/models/reference.py), f32 on the CPU; the row says
"peer": "plain-torch-lora" and why, and reports peak RSS instead of CUDA memory.
"""
import json
import os
import resource
import sys
import time

import torch

RANK, ALPHA = 16, 32
QLORA = {"Llama-3.1-8B", "tiny-qlora"}  # Lathe runs these as QLoRA (check.ts MODELS); the peer keeps the base unquantized
HERE = os.path.dirname(os.path.abspath(__file__))


def args(argv):
    a = {"T": "2048", "B": "1", "steps": "3", "dtype": "bf16", "recompute": "on", "layers": "0"}
    pos = []
    i = 0
    while i < len(argv):
        if argv[i].startswith("--"):
            a[argv[i][2:]] = argv[i + 1]
            i += 2
        else:
            pos.append(argv[i])
            i += 1
    return pos, a


def model_dir(root, model, layers):
    return os.path.join(root, f"{model}-L{layers}" if layers > 0 else model)


def timed(step, steps):
    """Two untimed steps, then `steps` timed ones; returns (median ms, min ms, first loss, last loss)."""
    cuda = torch.cuda.is_available()
    first = step()
    step()
    ts, last = [], first
    for _ in range(steps):
        if cuda:
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        last = step()
        if cuda:
            torch.cuda.synchronize()
        ts.append((time.perf_counter() - t0) * 1000)
    ts.sort()
    return ts[len(ts) // 2], ts[0], first, last


def ids_for(V, B, T, device):
    # the same token ids as the Node side (check.ts): ((i * 2654435761) mod 2^32) mod V, targets shifted by one
    n = B * T
    i = torch.arange(n, dtype=torch.int64)
    ids = ((i * 2654435761) % (2 ** 32)) % V
    tgt = torch.roll(ids, -1)
    return ids.view(B, T).to(device), tgt.view(B, T).to(device)


def lora_step(params, loss_of):
    """The step both peers time: loss_of() (the mean token cross-entropy, f32) and its backward, the grad norm
    clipped to 1.0, AdamW (lr 1e-4, no weight decay) over `params`; the step returns the loss."""
    opt = torch.optim.AdamW(params, lr=1e-4, weight_decay=0.0)

    def step():
        loss = loss_of()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        return float(loss)

    return step


def peft_row(folder, B, T, steps, dt, recompute):
    from transformers import AutoModelForCausalLM
    from peft import LoraConfig, get_peft_model
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    m = AutoModelForCausalLM.from_pretrained(folder, dtype=dt, attn_implementation="sdpa").cuda()
    if recompute:
        m.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        m.enable_input_require_grads()
    m = get_peft_model(m, LoraConfig(r=RANK, lora_alpha=ALPHA, lora_dropout=0.0, target_modules="all-linear", task_type="CAUSAL_LM"))
    params = [p for p in m.parameters() if p.requires_grad]
    ids, tgt = ids_for(m.config.vocab_size, B, T, "cuda")

    def loss_of():
        logits = m(input_ids=ids).logits
        return torch.nn.functional.cross_entropy(logits.float().view(-1, logits.shape[-1]), tgt.view(-1))

    step = lora_step(params, loss_of)
    med, mn, l0, l1 = timed(step, steps)
    row = {"peer": "peft", "lora_params": sum(p.numel() for p in params), "ms_med": round(med, 1), "ms_min": round(mn, 1),
           "loss_first": l0, "loss_last": l1, "cuda_max_allocated_mib": torch.cuda.max_memory_allocated() >> 20,
           "cuda_max_reserved_mib": torch.cuda.max_memory_reserved() >> 20, "gpu": torch.cuda.get_device_name(0)}
    del m, step, params
    return row


def plain_row(folder, B, T, steps, dt, why):
    sys.path.insert(0, os.path.join(HERE, "..", "..", "test", "oracle", "models"))
    import reference as R
    raw, W = R.load_model(folder)
    cfg = R.Cfg(raw)
    W = {k: (v.to(dt) if v.is_floating_point() else v) for k, v in W.items()}
    g = torch.Generator().manual_seed(0)
    lora = {}
    for name, fin, fout in R.lora_targets(cfg, W, "all-linear"):
        A = ((torch.rand(RANK, fin, generator=g) * 2 - 1) / fin ** 0.5).to(dt).requires_grad_(True)
        Bm = torch.zeros(fout, RANK, dtype=dt).requires_grad_(True)  # PEFT's init: B = 0
        lora[name] = (A, Bm)
    flat = [t for ab in lora.values() for t in ab]
    L = R.Lora(lora, ALPHA / RANK)
    ids, tgt = ids_for(cfg.V, B, T, "cpu")
    step = lora_step(flat, lambda: R.masked_ce(R.forward(cfg, W, ids, L).float(), tgt, torch.ones(B, T)))
    med, mn, l0, l1 = timed(step, steps)
    return {"peer": "plain-torch-lora", "why": why, "lora_params": sum(t.numel() for t in flat), "ms_med": round(med, 1), "ms_min": round(mn, 1),
            "loss_first": l0, "loss_last": l1, "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss >> 10, "device": "cpu",
            "threads": torch.get_num_threads()}


def main(argv):
    pos, a = args(argv)
    root, models = pos[0], pos[1].split(",")
    B, steps, layers = int(a["B"]), int(a["steps"]), int(a["layers"])
    recompute = a["recompute"] == "on"
    why = None
    try:
        import transformers  # noqa: F401
        import peft  # noqa: F401
        if not torch.cuda.is_available():
            why = "no CUDA device"
    except ImportError as e:
        why = f"{e} (transformers/peft missing)"
    dt = {"bf16": torch.bfloat16, "fp32": torch.float32}[a["dtype"]]
    if why:
        dt = torch.float32  # the CPU fallback computes in f32 (bf16 matmuls on the CPU are slow and lossy in torch 1.13)
    for model in models:
        folder = model_dir(root, model, layers)
        for T in [int(t) for t in a["T"].split(",")]:
            base = {"kind": "torch", "model": model, "batch": B, "seqLen": T, "recompute": recompute and not why, "rank": RANK,
                    "dtype": str(dt).split(".")[-1], "base_dtype": str(dt).split(".")[-1], "torch": torch.__version__}
            if model in QLORA:
                base["base_quant"] = "none: bitsandbytes is not installed, so the peer's base is not NF4 (Lathe's is)"
            try:
                row = plain_row(folder, B, T, steps, dt, why) if why else peft_row(folder, B, T, steps, dt, recompute)
                ms = row["ms_med"]
                row["tokens_per_s"] = round(B * T / (ms / 1000))
                print(json.dumps({**base, **row}), flush=True)
            except Exception as ex:  # one failing row must not lose the others
                print(json.dumps({**base, "error": repr(ex)[:600]}), flush=True)
            if torch.cuda.is_available():
                torch.cuda.empty_cache()


if __name__ == "__main__":
    main(sys.argv[1:])
