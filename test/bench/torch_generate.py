"""
PyTorch baseline for the generation bench: greedy generation with a KV cache (growing, torch.cat) on the
same model folder with reference.py's HF-exact layers, timed like test/bench/generate.ts (prompt prefilled
in one forward, then one token per step, EOS ignored). Prints one JSON line.

    /usr/bin/python3 test/bench/torch_generate.py MODEL_DIR PROMPT_TOKENS NEW_TOKENS [cpu|cuda]

`--check` instead prints the greedy ids for the oracle prompt (test/oracle/generate), to confirm the cached
loop agrees with the uncached oracle.
"""
import json
import os
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "oracle", "models"))
import reference as R  # noqa: E402


class Model:
    def __init__(self, folder, device):
        raw, W = R.load_model(folder)
        self.cfg = R.Cfg(raw)
        self.W = {k: v.to(device) for k, v in W.items()}
        self.device = device
        self.inv = R.inv_freq(self.cfg).to(device) if self.cfg.family != "gpt2" else None

    def step(self, ids, cache, start):
        """ids [1, T] at positions start..start+T-1; cache: list of (k, v) [1, heads, S, D] or None. Returns last logits [V]."""
        cfg, W = self.cfg, self.W
        T = ids.shape[1]
        S = start + T
        # key j visible to query i when j <= start + i
        mask = torch.full((T, S), torch.finfo(torch.float32).min, device=self.device).triu(start + 1)
        if cfg.family == "gpt2":
            return self._gpt2(ids, cache, start, mask)
        H, K, D = cfg.H, cfg.K, cfg.D
        h = W["model.embed_tokens.weight"][ids]
        freqs = torch.outer(torch.arange(start, S, device=self.device).float(), self.inv)
        emb = torch.cat((freqs, freqs), dim=-1)
        cos, sin = emb.cos(), emb.sin()
        get = W.get
        for i in range(cfg.L):
            p, a, m = f"model.layers.{i}", f"model.layers.{i}.self_attn", f"model.layers.{i}.mlp"
            x = R.rms_norm(h, W[f"{p}.input_layernorm.weight"], cfg.eps)
            q = R.linear(W[f"{a}.q_proj.weight"], x, "", get(f"{a}.q_proj.bias")).view(1, T, H, D)
            k = R.linear(W[f"{a}.k_proj.weight"], x, "", get(f"{a}.k_proj.bias")).view(1, T, K, D)
            v = R.linear(W[f"{a}.v_proj.weight"], x, "", get(f"{a}.v_proj.bias")).view(1, T, K, D)
            if cfg.qk_norm:
                q = R.rms_norm(q, W[f"{a}.q_norm.weight"], cfg.eps)
                k = R.rms_norm(k, W[f"{a}.k_norm.weight"], cfg.eps)
            q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)
            if cfg.use_rope[i]:
                q = q * cos + R.rotate_half(q) * sin
                k = k * cos + R.rotate_half(k) * sin
            if cache[i] is not None:
                k, v = torch.cat((cache[i][0], k), 2), torch.cat((cache[i][1], v), 2)
            cache[i] = (k, v)
            kk, vv = k.repeat_interleave(H // K, dim=1), v.repeat_interleave(H // K, dim=1)
            s = (q @ kk.transpose(2, 3)) * (D ** -0.5) + mask
            o = (torch.softmax(s, dim=-1) @ vv).transpose(1, 2).reshape(1, T, H * D)
            h = h + R.linear(W[f"{a}.o_proj.weight"], o, "", get(f"{a}.o_proj.bias"))
            x = R.rms_norm(h, W[f"{p}.post_attention_layernorm.weight"], cfg.eps)
            g = R.linear(W[f"{m}.gate_proj.weight"], x, "", get(f"{m}.gate_proj.bias"))
            u = R.linear(W[f"{m}.up_proj.weight"], x, "", get(f"{m}.up_proj.bias"))
            h = h + R.linear(W[f"{m}.down_proj.weight"], torch.nn.functional.silu(g) * u, "", get(f"{m}.down_proj.bias"))
        h = R.rms_norm(h[:, -1], W["model.norm.weight"], cfg.eps)
        head = W["model.embed_tokens.weight"] if cfg.tied else W["lm_head.weight"]
        return (h @ head.t())[0]

    def _gpt2(self, ids, cache, start, mask):
        cfg, W = self.cfg, self.W
        T, H, D, C = ids.shape[1], cfg.H, cfg.D, cfg.C
        pre = "transformer." if "transformer.wte.weight" in W else ""
        ln = lambda x, n: torch.nn.functional.layer_norm(x, (C,), W[f"{n}.weight"], W[f"{n}.bias"], cfg.eps)
        h = W[f"{pre}wte.weight"][ids] + W[f"{pre}wpe.weight"][start:start + T]
        for i in range(cfg.L):
            p = f"{pre}h.{i}"
            x = ln(h, f"{p}.ln_1")
            qkv = R.linear(W[f"{p}.attn.c_attn.weight"], x, "", W[f"{p}.attn.c_attn.bias"], in_out=True)
            q, k, v = (t.view(1, T, H, D).transpose(1, 2) for t in qkv.split(C, dim=2))
            if cache[i] is not None:
                k, v = torch.cat((cache[i][0], k), 2), torch.cat((cache[i][1], v), 2)
            cache[i] = (k, v)
            s = (q @ k.transpose(-1, -2)) / (D ** 0.5) + mask
            o = (torch.softmax(s, dim=-1) @ v).transpose(1, 2).reshape(1, T, C)
            h = h + R.linear(W[f"{p}.attn.c_proj.weight"], o, "", W[f"{p}.attn.c_proj.bias"], in_out=True)
            x = ln(h, f"{p}.ln_2")
            u = R.gelu_new(R.linear(W[f"{p}.mlp.c_fc.weight"], x, "", W[f"{p}.mlp.c_fc.bias"], in_out=True))
            h = h + R.linear(W[f"{p}.mlp.c_proj.weight"], u, "", W[f"{p}.mlp.c_proj.bias"], in_out=True)
        return (ln(h[:, -1], f"{pre}ln_f") @ W[f"{pre}wte.weight"].t())[0]

    def greedy(self, prompt, n, sync):
        cache = [None] * self.cfg.L
        ids = torch.tensor([prompt], dtype=torch.int64, device=self.device)
        t0 = time.perf_counter()
        logits = self.step(ids, cache, 0)
        tok = int(torch.argmax(logits))
        sync()
        t1 = time.perf_counter()
        out = [tok]
        for s in range(n - 1):
            logits = self.step(torch.tensor([[tok]], device=self.device), cache, len(prompt) + s)
            tok = int(torch.argmax(logits))
            out.append(tok)
        sync()
        t2 = time.perf_counter()
        return out, t1 - t0, t2 - t1


def main(argv):
    torch.set_num_threads(int(os.environ.get("LATHE_BENCH_THREADS", "2")))
    if argv[0] == "--check":
        m = Model(argv[1], "cpu")
        with torch.no_grad():
            print(json.dumps(m.greedy([1, 57, 203, 18, 99, 311, 42, 7], 12, lambda: None)[0]))
        return
    folder, P, N = argv[0], int(argv[1]), int(argv[2])
    device = argv[3] if len(argv) > 3 else "cpu"
    m = Model(folder, device)
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    g = torch.Generator().manual_seed(1)
    prompt = torch.randint(0, m.cfg.V, (P,), generator=g).tolist()
    with torch.no_grad():
        m.greedy(prompt, 8, sync)  # warm-up
        runs = [m.greedy(prompt, N, sync) for _ in range(3)]
    print(json.dumps({"device": device, "torch": torch.__version__, "prompt_tokens": P, "new_tokens": N,
                      "prefill_tok_s": max(P / r[1] for r in runs), "decode_tok_s": max((N - 1) / r[2] for r in runs)}))


if __name__ == "__main__":
    main(sys.argv[1:])
