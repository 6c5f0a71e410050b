"""
Pure-PyTorch reference forward passes for Lathe's supported architectures, written from the semantics
of Hugging Face transformers' modeling files (transformers is not installed here). Reads a model folder
(config.json + model.safetensors or sharded with model.safetensors.index.json; f32/f16/bf16) without
the safetensors package.

Used by gen_fixtures.py (parity fixtures for the TS engine) and by the export oracle (issue 8), which
loads merged safetensors and reproduces logits.

Shapes: B = batch, T = time, C = hidden, H = heads, K = kv heads, D = head dim, V = vocab, F = MLP.
"""
import json
import math
import os
import struct

import numpy as np
import torch

# ---------------------------------------------------------------------------------------------------
# safetensors, read by hand: u64 LE header length | JSON header | data

_NP = {"F32": np.float32, "F16": np.float16, "F64": np.float64, "I64": np.int64, "I32": np.int32,
       "I16": np.int16, "I8": np.int8, "U8": np.uint8, "BOOL": np.bool_}


def read_safetensors(path):
    """Returns ({name: float32 torch tensor (floats) or native tensor}, metadata)."""
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n).decode("utf-8"))
        data = f.read()
    meta = header.pop("__metadata__", {})
    out = {}
    for name, e in header.items():
        b, end = e["data_offsets"]
        raw = data[b:end]
        if len(raw) != end - b:
            raise ValueError(f"{path}: tensor {name} is truncated")
        if e["dtype"] == "BF16":
            # bf16 is the top 16 bits of an f32.
            u = np.frombuffer(raw, dtype=np.uint16).astype(np.uint32) << 16
            arr = u.view(np.float32)
        else:
            arr = np.frombuffer(raw, dtype=_NP[e["dtype"]])
            if arr.dtype in (np.float16, np.float64):
                arr = arr.astype(np.float32)
        out[name] = torch.from_numpy(arr.copy()).reshape(e["shape"])
    return out, meta


def load_model(folder):
    with open(os.path.join(folder, "config.json")) as f:
        cfg = json.load(f)
    index = os.path.join(folder, "model.safetensors.index.json")
    weights = {}
    if os.path.exists(index):
        with open(index) as f:
            files = sorted(set(json.load(f)["weight_map"].values()))
        for fn in files:
            weights.update(read_safetensors(os.path.join(folder, fn))[0])
    else:
        weights = read_safetensors(os.path.join(folder, "model.safetensors"))[0]
    return cfg, weights


# ---------------------------------------------------------------------------------------------------
# Config, normalized the HF way (defaults from each transformers configuration_*.py)

class Cfg:
    def __init__(self, raw):
        arch = (raw.get("architectures") or [None])[0]
        mt = raw.get("model_type")
        self.raw = raw
        if arch == "GPT2LMHeadModel" or (arch is None and mt == "gpt2"):
            self.family = "gpt2"
            self.C = raw.get("n_embd", 768)
            self.L = raw.get("n_layer", 12)
            self.H = raw.get("n_head", 12)
            self.K = self.H
            self.D = self.C // self.H
            self.F = raw.get("n_inner") or 4 * self.C
            self.V = raw["vocab_size"]
            self.eps = raw.get("layer_norm_epsilon", 1e-5)
            self.act = raw.get("activation_function", "gelu_new")
            self.tied = True
            return
        fam = {"LlamaForCausalLM": "llama", "MistralForCausalLM": "mistral", "Qwen2ForCausalLM": "qwen2",
               "Qwen3ForCausalLM": "qwen3", "SmolLM3ForCausalLM": "smollm3", "GraniteForCausalLM": "granite",
               "Olmo2ForCausalLM": "olmo2", "Gemma2ForCausalLM": "gemma2", "Gemma3ForCausalLM": "gemma3",
               "Phi3ForCausalLM": "phi3"}.get(arch, {"gemma3_text": "gemma3"}.get(mt, mt))
        if fam in EXT_FAMILIES:
            init_ext(self, raw, fam)
            return
        if fam not in ("llama", "mistral", "qwen2", "qwen3", "smollm3"):
            raise ValueError(f"unsupported architecture {arch or mt}")
        self.family = fam
        self.C = raw["hidden_size"]
        self.L = raw["num_hidden_layers"]
        self.H = raw["num_attention_heads"]
        self.K = raw.get("num_key_value_heads") or self.H
        self.D = raw.get("head_dim") or self.C // self.H
        self.F = raw["intermediate_size"]
        self.V = raw["vocab_size"]
        self.eps = raw.get("rms_norm_eps", 1e-6)
        self.theta = raw.get("rope_theta", 2000000.0 if fam == "smollm3" else 10000.0)
        self.rope_scaling = raw.get("rope_scaling")
        self.tied = raw.get("tie_word_embeddings", fam == "smollm3")
        ab = raw.get("attention_bias", False)
        self.qkv_bias = True if fam == "qwen2" else (False if fam == "mistral" else ab)
        self.o_bias = False if fam in ("qwen2", "mistral") else ab
        self.mlp_bias = raw.get("mlp_bias", False) if fam in ("llama", "smollm3") else False
        self.qk_norm = fam == "qwen3"
        if fam == "smollm3":
            lst = raw.get("no_rope_layers")
            if lst is None:
                iv = raw.get("no_rope_layer_interval", 4)
                lst = [int((i + 1) % iv != 0) for i in range(self.L)]
            self.use_rope = [bool(x) for x in lst[: self.L]]
        else:
            self.use_rope = [True] * self.L


def inv_freq(cfg):
    """As HF's _compute_default_rope_parameters / _compute_llama3_parameters (float32)."""
    D = cfg.D
    inv = 1.0 / (cfg.theta ** (torch.arange(0, D, 2, dtype=torch.int64).float() / D))
    rs = cfg.rope_scaling
    if rs:
        t = rs.get("rope_type", rs.get("type"))
        if t == "llama3":
            factor = rs["factor"]
            low, high = rs["low_freq_factor"], rs["high_freq_factor"]
            old = rs["original_max_position_embeddings"]
            low_wl, high_wl = old / low, old / high
            wl = 2 * math.pi / inv
            inv_l = torch.where(wl > low_wl, inv / factor, inv)
            smooth = (old / wl - low) / (high - low)
            smoothed = (1 - smooth) * inv_l / factor + smooth * inv_l
            medium = ~(wl < high_wl) * ~(wl > low_wl)
            inv = torch.where(medium, smoothed, inv_l)
        elif t == "linear":
            inv = inv / rs["factor"]
        elif t not in (None, "default"):
            raise ValueError(f"rope scaling {t} not supported")
    return inv


def rotate_half(x):
    x1 = x[..., : x.shape[-1] // 2]
    x2 = x[..., x.shape[-1] // 2:]
    return torch.cat((-x2, x1), dim=-1)


def rms_norm(x, w, eps):
    var = x.pow(2).mean(-1, keepdim=True)
    return w * (x * torch.rsqrt(var + eps))


def gelu_new(x):
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * torch.pow(x, 3.0))))


# ---------------------------------------------------------------------------------------------------
# LoRA: y = base(x) + scale * (x @ A^T) @ B^T,  A: [r, in], B: [out, r]

class Lora:
    def __init__(self, tensors, scale):
        """tensors: {module weight name without '.weight': (A, B)}."""
        self.t = tensors
        self.scale = scale

    def delta(self, module, x):
        ab = self.t.get(module)
        if ab is None:
            return None
        A, B = ab
        return self.scale * ((x @ A.t()) @ B.t())


def linear(W, x, name, bias=None, lora=None, in_out=False):
    """nn.Linear (W [out, in]) or GPT-2 Conv1D (W [in, out]) with optional bias and LoRA."""
    y = x @ W if in_out else x @ W.t()
    if bias is not None:
        y = y + bias
    if lora is not None:
        d = lora.delta(name, x)
        if d is not None:
            y = y + d
    return y


# ---------------------------------------------------------------------------------------------------
# Forward passes. ids: int64 [B, T]. Returns logits [B, T, V] (float32).

def causal_mask(T):
    return torch.full((T, T), torch.finfo(torch.float32).min).triu(1)


def forward_llama_like(cfg, W, ids, lora=None):
    B, T = ids.shape
    H, K, D = cfg.H, cfg.K, cfg.D
    get = W.get
    h = W["model.embed_tokens.weight"][ids]  # [B, T, C]
    pos = torch.arange(T).float()
    freqs = torch.outer(pos, inv_freq(cfg))  # [T, D/2]
    emb = torch.cat((freqs, freqs), dim=-1)
    cos, sin = emb.cos(), emb.sin()  # [T, D]
    mask = causal_mask(T)
    for i in range(cfg.L):
        p = f"model.layers.{i}"
        r = h
        x = rms_norm(h, W[f"{p}.input_layernorm.weight"], cfg.eps)
        a = f"{p}.self_attn"
        q = linear(W[f"{a}.q_proj.weight"], x, f"{a}.q_proj", get(f"{a}.q_proj.bias"), lora).view(B, T, H, D)
        k = linear(W[f"{a}.k_proj.weight"], x, f"{a}.k_proj", get(f"{a}.k_proj.bias"), lora).view(B, T, K, D)
        v = linear(W[f"{a}.v_proj.weight"], x, f"{a}.v_proj", get(f"{a}.v_proj.bias"), lora).view(B, T, K, D)
        if cfg.qk_norm:  # Qwen3: per-head RMSNorm over D, before RoPE
            q = rms_norm(q, W[f"{a}.q_norm.weight"], cfg.eps)
            k = rms_norm(k, W[f"{a}.k_norm.weight"], cfg.eps)
        q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)  # [B, H|K, T, D]
        if cfg.use_rope[i]:
            q = q * cos + rotate_half(q) * sin
            k = k * cos + rotate_half(k) * sin
        # repeat_kv: each kv head serves H/K query heads.
        k = k.repeat_interleave(H // K, dim=1)
        v = v.repeat_interleave(H // K, dim=1)
        s = (q @ k.transpose(2, 3)) * (D ** -0.5) + mask  # [B, H, T, T]
        o = torch.softmax(s, dim=-1, dtype=torch.float32) @ v  # [B, H, T, D]
        o = o.transpose(1, 2).reshape(B, T, H * D)
        h = r + linear(W[f"{a}.o_proj.weight"], o, f"{a}.o_proj", get(f"{a}.o_proj.bias"), lora)
        r = h
        x = rms_norm(h, W[f"{p}.post_attention_layernorm.weight"], cfg.eps)
        m = f"{p}.mlp"
        g = linear(W[f"{m}.gate_proj.weight"], x, f"{m}.gate_proj", get(f"{m}.gate_proj.bias"), lora)
        u = linear(W[f"{m}.up_proj.weight"], x, f"{m}.up_proj", get(f"{m}.up_proj.bias"), lora)
        h = r + linear(W[f"{m}.down_proj.weight"], torch.nn.functional.silu(g) * u, f"{m}.down_proj", get(f"{m}.down_proj.bias"), lora)
    h = rms_norm(h, W["model.norm.weight"], cfg.eps)
    head = W["model.embed_tokens.weight"] if cfg.tied else W["lm_head.weight"]
    return h @ head.t()


def forward_gpt2(cfg, W, ids, lora=None):
    B, T = ids.shape
    H, D, C = cfg.H, cfg.D, cfg.C
    pre = "transformer." if "transformer.wte.weight" in W else ""
    ln = lambda x, n: torch.nn.functional.layer_norm(x, (C,), W[f"{n}.weight"], W[f"{n}.bias"], cfg.eps)
    act = {"gelu_new": gelu_new, "gelu": torch.nn.functional.gelu, "relu": torch.relu,
           "gelu_pytorch_tanh": lambda x: torch.nn.functional.gelu(x, approximate="tanh")}[cfg.act]
    h = W[f"{pre}wte.weight"][ids] + W[f"{pre}wpe.weight"][torch.arange(T)]
    mask = causal_mask(T)
    for i in range(cfg.L):
        p = f"{pre}h.{i}"
        x = ln(h, f"{p}.ln_1")
        qkv = linear(W[f"{p}.attn.c_attn.weight"], x, f"{p}.attn.c_attn", W[f"{p}.attn.c_attn.bias"], lora, in_out=True)
        q, k, v = qkv.split(C, dim=2)
        q, k, v = (t.view(B, T, H, D).transpose(1, 2) for t in (q, k, v))
        s = (q @ k.transpose(-1, -2)) / (D ** 0.5) + mask
        o = (torch.softmax(s, dim=-1) @ v).transpose(1, 2).reshape(B, T, C)
        h = h + linear(W[f"{p}.attn.c_proj.weight"], o, f"{p}.attn.c_proj", W[f"{p}.attn.c_proj.bias"], lora, in_out=True)
        x = ln(h, f"{p}.ln_2")
        u = act(linear(W[f"{p}.mlp.c_fc.weight"], x, f"{p}.mlp.c_fc", W[f"{p}.mlp.c_fc.bias"], lora, in_out=True))
        h = h + linear(W[f"{p}.mlp.c_proj.weight"], u, f"{p}.mlp.c_proj", W[f"{p}.mlp.c_proj.bias"], lora, in_out=True)
    h = ln(h, f"{pre}ln_f")
    return h @ W[f"{pre}wte.weight"].t()


def forward(cfg, W, ids, lora=None):
    if cfg.family in EXT_FAMILIES:
        return forward_ext(cfg, W, ids, lora)
    if cfg.family == "gpt2":
        return forward_gpt2(cfg, W, ids, lora)
    return forward_llama_like(cfg, W, ids, lora)


# ---------------------------------------------------------------------------------------------------
# Newer families (issue 17): Granite 3, OLMo 2, Gemma 2, Gemma 3 text, Phi-3 / Phi-3.5 / Phi-4-mini.
# Each follows its transformers modeling file (modeling_granite / olmo2 / gemma2 / gemma3 / phi3):
#   Granite: h = embed * embedding_multiplier; scores * attention_multiplier; h = r + out * residual_multiplier;
#            logits / logits_scaling.
#   OLMo 2:  no input norm; h = r + post_attention_layernorm(attn(h)); h = r + post_feedforward_layernorm(mlp(h));
#            q_norm / k_norm are RMSNorms over the whole [H*D] / [K*D] projection, before RoPE.
#   Gemma 2: h = embed * sqrt(C) (as a tensor of h's dtype); RMSNorm x*rsqrt(mean x^2+eps)*(1+w); four norms per
#            layer; scores * query_pre_attn_scalar^-0.5, then cap*tanh(s/cap), then the mask; sliding window on
#            even layers (mask kv <= q - window); GeGLU with gelu tanh; logits cap*tanh(l/cap).
#   Gemma 3: Gemma 2 without caps by default, (1+w) q/k norms per head before RoPE, sliding layers where
#            (i+1) % sliding_window_pattern != 0 using RoPE base rope_local_base_freq (no scaling), global layers
#            rope_theta with rope_scaling.
#   Phi-3:   fused qkv_proj (q | k | v) and gate_up_proj (gate | up, up * silu(gate)); longrope: inv_freq =
#            1 / (ext * base^(arange(0, d, 2)/d)) with ext = long_factor if T > original_max_position_embeddings
#            else short_factor, cos/sin * attention factor sqrt(1 + ln(max/orig)/ln(orig)); partial rotary
#            (first d = head_dim * partial_rotary_factor dims rotate); optional sliding window on all layers.

EXT_FAMILIES = ("granite", "olmo2", "gemma2", "gemma3", "phi3")


def init_ext(self, raw, fam):
    self.family = fam
    self.C = raw["hidden_size"]
    self.L = raw["num_hidden_layers"]
    self.H = raw["num_attention_heads"]
    self.K = raw.get("num_key_value_heads") or self.H
    gemma = fam in ("gemma2", "gemma3")
    self.D = raw.get("head_dim") or (256 if gemma else self.C // self.H)
    self.F = raw["intermediate_size"]
    self.V = raw["vocab_size"]
    self.eps = raw.get("rms_norm_eps", 1e-5 if fam in ("olmo2", "phi3") else 1e-6)
    self.theta = raw.get("rope_theta", 1000000.0 if fam == "gemma3" else 10000.0)
    self.rope_scaling = raw.get("rope_scaling")
    self.tied = raw.get("tie_word_embeddings", gemma)
    ab = raw.get("attention_bias", False) if fam in ("granite", "olmo2", "gemma2", "gemma3") else False
    self.qkv_bias = self.o_bias = ab
    self.mlp_bias = raw.get("mlp_bias", False) if fam == "granite" else False
    self.use_rope = [True] * self.L
    self.emb_mult = {"granite": raw.get("embedding_multiplier", 1.0)}.get(fam, 1.0)
    self.res_mult = raw.get("residual_multiplier", 1.0) if fam == "granite" else 1.0
    self.logits_div = raw.get("logits_scaling", 1.0) if fam == "granite" else 1.0
    self.scaling = self.D ** -0.5
    if fam == "granite":
        self.scaling = raw.get("attention_multiplier", 1.0)
    if gemma:
        self.scaling = raw.get("query_pre_attn_scalar", 256) ** -0.5
    self.attn_cap = raw.get("attn_logit_softcapping", 50.0) if fam == "gemma2" else raw.get("attn_logit_softcapping") if gemma else None
    self.final_cap = raw.get("final_logit_softcapping", 30.0) if fam == "gemma2" else raw.get("final_logit_softcapping") if gemma else None
    self.window = raw.get("sliding_window") if fam in ("gemma2", "gemma3", "phi3") else None
    if fam == "gemma2":
        self.sliding = [i % 2 == 0 for i in range(self.L)]
    elif fam == "gemma3":
        pat = raw.get("sliding_window_pattern", 6)
        self.sliding = [(i + 1) % pat != 0 for i in range(self.L)]
    else:
        self.sliding = [self.window is not None] * self.L
    self.rotary_dim = int(self.D * raw.get("partial_rotary_factor", 1.0)) if fam == "phi3" else self.D


def ext_inv_freq(cfg, T, local):
    """Inverse frequencies [d/2] and the cos/sin multiplier for a layer kind."""
    d = cfg.rotary_dim
    shape = torch.arange(0, d, 2, dtype=torch.int64).float() / d
    if local:  # Gemma 3 sliding layers: rope_local_base_freq, no scaling
        return 1.0 / (cfg.raw.get("rope_local_base_freq", 10000.0) ** shape), 1.0
    inv = 1.0 / (cfg.theta ** shape)
    rs = cfg.rope_scaling
    if not rs:
        return inv, 1.0
    t = rs.get("rope_type", rs.get("type"))
    if t == "linear":
        return inv / rs["factor"], 1.0
    if t in ("longrope", "su"):
        orig = cfg.raw["original_max_position_embeddings"]
        factor = cfg.raw["max_position_embeddings"] / orig
        af = rs.get("attention_factor") or (1.0 if factor <= 1.0 else math.sqrt(1 + math.log(factor) / math.log(orig)))
        ext = torch.tensor(rs["long_factor"] if T > orig else rs["short_factor"], dtype=torch.float32)
        return 1.0 / (ext * cfg.theta ** shape), af
    raise ValueError(f"rope scaling {t} not supported here")


def gemma_rms_norm(x, w, eps):
    return (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps)) * (1.0 + w)


def forward_ext(cfg, W, ids, lora=None):
    B, T = ids.shape
    H, K, D, C, F, fam = cfg.H, cfg.K, cfg.D, cfg.C, cfg.F, cfg.family
    gemma = fam in ("gemma2", "gemma3")
    get = W.get
    nrm = (lambda x, n: gemma_rms_norm(x, W[n], cfg.eps)) if gemma else (lambda x, n: rms_norm(x, W[n], cfg.eps))
    h = W["model.embed_tokens.weight"][ids]
    if gemma:
        h = h * torch.tensor(C ** 0.5, dtype=h.dtype)
    elif cfg.emb_mult != 1.0:
        h = h * cfg.emb_mult
    big = torch.finfo(torch.float32).min
    full = causal_mask(T)
    if cfg.window is not None:
        qi = torch.arange(T).view(T, 1)
        ki = torch.arange(T).view(1, T)
        windowed = torch.where((ki <= qi) & (qi - ki < cfg.window), torch.tensor(0.0), torch.tensor(big))
    pos = torch.arange(T).float()
    tables = {}
    for local in (False, True):
        inv, af = ext_inv_freq(cfg, T, local)
        freqs = torch.outer(pos, inv)
        emb = torch.cat((freqs, freqs), dim=-1)
        tables[local] = (emb.cos() * af, emb.sin() * af)
    rd = cfg.rotary_dim

    def apply_rope(x, cos, sin):  # x [B, heads, T, D]; the first rd dims rotate
        xr, xp = x[..., :rd], x[..., rd:]
        return torch.cat((xr * cos + rotate_half(xr) * sin, xp), dim=-1)

    for i in range(cfg.L):
        p = f"model.layers.{i}"
        a = f"{p}.self_attn"
        m = f"{p}.mlp"
        r = h
        x = h if fam == "olmo2" else nrm(h, f"{p}.input_layernorm.weight")
        if fam == "phi3":
            qkv = linear(W[f"{a}.qkv_proj.weight"], x, f"{a}.qkv_proj", None, lora)
            q, k, v = qkv[..., : H * D], qkv[..., H * D: (H + K) * D], qkv[..., (H + K) * D:]
        else:
            q = linear(W[f"{a}.q_proj.weight"], x, f"{a}.q_proj", get(f"{a}.q_proj.bias"), lora)
            k = linear(W[f"{a}.k_proj.weight"], x, f"{a}.k_proj", get(f"{a}.k_proj.bias"), lora)
            v = linear(W[f"{a}.v_proj.weight"], x, f"{a}.v_proj", get(f"{a}.v_proj.bias"), lora)
        if fam == "olmo2":  # over the whole projection
            q = rms_norm(q, W[f"{a}.q_norm.weight"], cfg.eps)
            k = rms_norm(k, W[f"{a}.k_norm.weight"], cfg.eps)
        q, k, v = q.view(B, T, H, D), k.view(B, T, K, D), v.view(B, T, K, D)
        if fam == "gemma3":  # per head, (1 + w)
            q = gemma_rms_norm(q, W[f"{a}.q_norm.weight"], cfg.eps)
            k = gemma_rms_norm(k, W[f"{a}.k_norm.weight"], cfg.eps)
        q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)
        sliding = cfg.window is not None and cfg.sliding[i]
        cos, sin = tables[fam == "gemma3" and sliding]
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        k = k.repeat_interleave(H // K, dim=1)
        v = v.repeat_interleave(H // K, dim=1)
        s = (q @ k.transpose(2, 3)) * cfg.scaling
        if cfg.attn_cap is not None:
            s = torch.tanh(s / cfg.attn_cap) * cfg.attn_cap
        s = s + (windowed if sliding else full)
        o = (torch.softmax(s, dim=-1, dtype=torch.float32) @ v).transpose(1, 2).reshape(B, T, H * D)
        o = linear(W[f"{a}.o_proj.weight"], o, f"{a}.o_proj", get(f"{a}.o_proj.bias"), lora)
        if fam in ("olmo2", "gemma2", "gemma3"):
            o = nrm(o, f"{p}.post_attention_layernorm.weight")
        h = r + o * cfg.res_mult if fam == "granite" else r + o
        r = h
        if fam == "olmo2":
            x = h
        elif gemma:
            x = nrm(h, f"{p}.pre_feedforward_layernorm.weight")
        else:
            x = nrm(h, f"{p}.post_attention_layernorm.weight")
        if fam == "phi3":
            gu = linear(W[f"{m}.gate_up_proj.weight"], x, f"{m}.gate_up_proj", None, lora)
            g, u = gu.chunk(2, dim=-1)
            inner = u * torch.nn.functional.silu(g)
        else:
            g = linear(W[f"{m}.gate_proj.weight"], x, f"{m}.gate_proj", get(f"{m}.gate_proj.bias"), lora)
            u = linear(W[f"{m}.up_proj.weight"], x, f"{m}.up_proj", get(f"{m}.up_proj.bias"), lora)
            act = (lambda t: torch.nn.functional.gelu(t, approximate="tanh")) if gemma else torch.nn.functional.silu
            inner = act(g) * u
        o = linear(W[f"{m}.down_proj.weight"], inner, f"{m}.down_proj", get(f"{m}.down_proj.bias"), lora)
        if fam in ("olmo2", "gemma2", "gemma3"):
            o = nrm(o, f"{p}.post_feedforward_layernorm.weight")
        h = r + o * cfg.res_mult if fam == "granite" else r + o
    h = nrm(h, "model.norm.weight")
    head = W["model.embed_tokens.weight"] if cfg.tied else W["lm_head.weight"]
    logits = h @ head.t()
    if fam == "granite":
        logits = logits / cfg.logits_div
    if cfg.final_cap is not None:
        logits = torch.tanh(logits / cfg.final_cap) * cfg.final_cap
    return logits


def lora_targets(cfg, W, preset="all-linear"):
    """Module names (weight name without '.weight') and their (in, out) for a LoRA preset."""
    out = []
    if cfg.family == "gpt2":
        pre = "transformer." if "transformer.wte.weight" in W else ""
        for i in range(cfg.L):
            p = f"{pre}h.{i}"
            attn = [(f"{p}.attn.c_attn", cfg.C, 3 * cfg.C), (f"{p}.attn.c_proj", cfg.C, cfg.C)]
            mlp = [(f"{p}.mlp.c_fc", cfg.C, cfg.F), (f"{p}.mlp.c_proj", cfg.F, cfg.C)]
            out += attn + (mlp if preset != "attention" else [])
        return out
    H, K, D, C, F = cfg.H, cfg.K, cfg.D, cfg.C, cfg.F
    for i in range(cfg.L):
        a = f"model.layers.{i}.self_attn"
        m = f"model.layers.{i}.mlp"
        if cfg.family == "phi3":  # PEFT targets the fused modules
            attn = [(f"{a}.qkv_proj", C, (H + 2 * K) * D), (f"{a}.o_proj", H * D, C)]
            mlp = [(f"{m}.gate_up_proj", C, 2 * F), (f"{m}.down_proj", F, C)]
            out += (attn if preset != "mlp" else []) + (mlp if preset != "attention" else [])
            continue
        attn = [(f"{a}.q_proj", C, H * D), (f"{a}.k_proj", C, K * D), (f"{a}.v_proj", C, K * D), (f"{a}.o_proj", H * D, C)]
        mlp = [(f"{m}.gate_proj", C, F), (f"{m}.up_proj", C, F), (f"{m}.down_proj", F, C)]
        out += (attn if preset != "mlp" else []) + (mlp if preset != "attention" else [])
    return out


def masked_ce(logits, labels, mask):
    """Mean cross-entropy over tokens with mask 1. logits [B, T, V], labels int64 [B, T], mask [B, T]."""
    ce = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1), reduction="none")
    m = mask.reshape(-1)
    return (ce * m).sum() / m.sum()


def main(argv):
    """python3 reference.py logits MODEL_DIR 1,2,3 [4,5,6 ...]  -> JSON {"logits": [B][T][V], "shape": [...]}
    (each argument after the folder is one row of token ids; rows must have equal length)."""
    if len(argv) < 3 or argv[0] != "logits":
        raise SystemExit("usage: reference.py logits MODEL_DIR IDS [IDS ...]   (IDS like 1,2,3)")
    raw, W = load_model(argv[1])
    cfg = Cfg(raw)
    ids = torch.tensor([[int(x) for x in row.split(",")] for row in argv[2:]], dtype=torch.int64)
    with torch.no_grad():
        logits = forward(cfg, W, ids)
    print(json.dumps({"architecture": (raw.get("architectures") or [cfg.family])[0], "shape": list(logits.shape),
                      "logits": logits.tolist()}))


if __name__ == "__main__":
    import sys
    main(sys.argv[1:])
