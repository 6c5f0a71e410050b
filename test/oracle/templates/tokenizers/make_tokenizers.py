#!/usr/bin/env python3
"""Builds the small byte-level BPE tokenizers the template tests use, one model folder per family:
tokenizer.json (trained here with a plain BPE loop over a little text, the family's special tokens
added) and tokenizer_config.json (special tokens, the chat template). Run: /usr/bin/python3 make_tokenizers.py

The folders also exercise the loader: llama2 names bos_token as an AddedToken dict, chatml ships a
named template list (default + tool_use), phi3 keeps its template in chat_template.jinja.
"""
import json
import os
import re
from collections import Counter

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", "..", "..", ".."))
N_MERGES = 400


def bytes_to_unicode():
    """GPT-2's printable stand-in for each byte (the ByteLevel pre-tokenizer alphabet)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs)}


BYTE = bytes_to_unicode()
# Close enough to GPT-2's split for training merges; the tokenizer itself uses the real ByteLevel regex.
WORD = re.compile(r"'s|'t|'re|'ve|'m|'ll|'d| ?[A-Za-zÀ-ÿ]+| ?[0-9]| ?[^\sA-Za-z0-9À-ÿ]+|\s+(?!\S)|\s+")


def corpus():
    texts = []
    with open(os.path.join(HERE, "..", "conversations.json"), encoding="utf-8") as f:
        data = json.load(f)
    for conv in data["conversations"]:
        for m in conv["messages"]:
            if isinstance(m.get("content"), str):
                texts.append(m["content"])
    tdir = os.path.join(ROOT, "resources", "templates")
    for name in sorted(os.listdir(tdir)):
        with open(os.path.join(tdir, name), encoding="utf-8") as f:
            texts.append(f.read())
    texts.append("The quick brown fox jumps over the lazy dog. You are a helpful assistant. " * 3)
    return "\n".join(texts)


def train(text):
    words = Counter(tuple(BYTE[b] for b in w.encode("utf-8")) for w in WORD.findall(text))
    vocab = {BYTE[b]: i for i, b in enumerate(sorted(BYTE, key=lambda b: ord(BYTE[b])))}
    merges = []
    for _ in range(N_MERGES):
        pairs = Counter()
        for w, n in words.items():
            for a, b in zip(w, w[1:]):
                pairs[(a, b)] += n
        if not pairs:
            break
        # Ties broken by the pair itself so the output does not depend on dict order.
        (a, b), _count = max(pairs.items(), key=lambda kv: (kv[1], kv[0]))
        merges.append([a, b])
        vocab[a + b] = len(vocab)
        merged = {}
        for w, n in words.items():
            out, i = [], 0
            while i < len(w):
                if i + 1 < len(w) and w[i] == a and w[i + 1] == b:
                    out.append(a + b)
                    i += 2
                else:
                    out.append(w[i])
                    i += 1
            merged[tuple(out)] = merged.get(tuple(out), 0) + n
        words = merged
    return vocab, merges


def tokenizer_json(vocab, merges, specials, bos_post=None):
    added = []
    for i, tok in enumerate(specials):
        added.append({"id": len(vocab) + i, "content": tok, "single_word": False, "lstrip": False,
                      "rstrip": False, "normalized": False, "special": True})
    byte_level = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True}
    if bos_post:
        bos_id = len(vocab) + specials.index(bos_post)
        post = {
            "type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": bos_post, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
            "pair": [{"SpecialToken": {"id": bos_post, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                     {"SpecialToken": {"id": bos_post, "type_id": 1}}, {"Sequence": {"id": "B", "type_id": 1}}],
            "special_tokens": {bos_post: {"id": bos_post, "ids": [bos_id], "tokens": [bos_post]}},
        }
    else:
        post = {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": False, "use_regex": True}
    return {
        "version": "1.0", "truncation": None, "padding": None, "added_tokens": added, "normalizer": None,
        "pre_tokenizer": byte_level, "post_processor": post, "decoder": dict(byte_level),
        "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
                  "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False, "ignore_merges": False,
                  "vocab": vocab, "merges": merges},
    }


def builtin(name):
    with open(os.path.join(ROOT, "resources", "templates", name), encoding="utf-8") as f:
        return f.read()


FAMILIES = {
    # name: (special tokens, token the post-processor adds or None, tokenizer_config extras)
    "chatml": (["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<think>", "</think>", "<tool_call>", "</tool_call>"], None,
               {"eos_token": "<|im_end|>", "pad_token": "<|endoftext|>", "bos_token": None,
                "chat_template": [{"name": "default", "template": builtin("chatml.jinja")},
                                  {"name": "tool_use", "template": builtin("qwen2_5.jinja")}]}),
    "llama3": (["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"], "<|begin_of_text|>",
               {"bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>", "chat_template": builtin("llama3.jinja")}),
    "llama2": (["<unk>", "<s>", "</s>", "[INST]", "[/INST]", "[AVAILABLE_TOOLS]", "[/AVAILABLE_TOOLS]", "[TOOL_CALLS]",
                "[TOOL_RESULTS]", "[/TOOL_RESULTS]"], "<s>",
               {"bos_token": {"__type": "AddedToken", "content": "<s>", "lstrip": False, "normalized": False, "rstrip": False, "single_word": False},
                "eos_token": "</s>", "unk_token": "<unk>", "add_bos_token": True, "chat_template": builtin("llama2.jinja")}),
    "gemma": (["<pad>", "<eos>", "<bos>", "<start_of_turn>", "<end_of_turn>"], "<bos>",
              {"bos_token": "<bos>", "eos_token": "<eos>", "pad_token": "<pad>", "chat_template": builtin("gemma.jinja")}),
    "phi3": (["<s>", "<|endoftext|>", "<|system|>", "<|user|>", "<|assistant|>", "<|end|>"], None,
             {"bos_token": "<s>", "eos_token": "<|endoftext|>"}),
}


def main():
    vocab, merges = train(corpus())
    for name, (specials, bos_post, config) in FAMILIES.items():
        folder = os.path.join(HERE, name)
        os.makedirs(folder, exist_ok=True)
        with open(os.path.join(folder, "tokenizer.json"), "w", encoding="utf-8") as f:
            json.dump(tokenizer_json(vocab, merges, specials, bos_post), f, ensure_ascii=False)
        cfg = {k: v for k, v in config.items() if v is not None}
        cfg["model_max_length"] = 4096
        with open(os.path.join(folder, "tokenizer_config.json"), "w", encoding="utf-8") as f:
            json.dump(cfg, f, ensure_ascii=False, indent=1)
        if name == "phi3":
            with open(os.path.join(folder, "chat_template.jinja"), "w", encoding="utf-8") as f:
                f.write(builtin("phi3.jinja"))
    print(f"vocab {len(vocab)}, merges {len(merges)}, families {len(FAMILIES)}")


if __name__ == "__main__":
    main()
