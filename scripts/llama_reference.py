#!/usr/bin/python3
"""A llama forward in plain PyTorch ops, as Hugging Face's LlamaForCausalLM computes it
(rotate_half rotary embedding, grouped-query attention by repeating key/value heads, RMSNorm,
SwiGLU, tied or untied head), on the weights of a checkpoint folder (config.json +
model.safetensors or the shards of model.safetensors.index.json) read with numpy: no mxqat code,
no transformers, no safetensors package. Computed in float64 from the stored values.

  llama_reference.py [--tol 1e-4] HF_DIR...

Each HF_DIR also holds the case to check: ids.i32 (little-endian int32 token ids, sequences of
T), seq_len.txt (T) and logits.f32 (float32 [n, vocab], mxqat's logits for those ids). Prints,
per folder, the largest difference relative to the largest reference logit; exits 1 when one is
above --tol (or on any problem), 0 otherwise. (One process for every case: importing torch is
the slow part.)
"""
import json
import os
import sys

import numpy as np
import torch


def read_safetensors(path):
    with open(path, "rb") as f:
        n = int.from_bytes(f.read(8), "little")
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, e in header.items():
        if name == "__metadata__":
            continue
        b, end = e["data_offsets"]
        raw = np.frombuffer(data[b:end], dtype=np.uint8)
        if e["dtype"] == "F32":
            a = raw.view("<f4").astype(np.float64)
        elif e["dtype"] == "F16":
            a = raw.view("<f2").astype(np.float64)
        elif e["dtype"] == "BF16":
            a = (raw.view("<u2").astype(np.uint32) << 16).view(np.float32).astype(np.float64)
        else:
            raise SystemExit(f"{path}: {name}: dtype {e['dtype']} not handled")
        out[name] = torch.from_numpy(a.reshape(e["shape"]).copy())
    return out


def read_weights(d):
    single = os.path.join(d, "model.safetensors")
    if os.path.exists(single):
        return read_safetensors(single)
    with open(os.path.join(d, "model.safetensors.index.json")) as f:
        files = sorted(set(json.load(f)["weight_map"].values()))
    w = {}
    for name in files:
        w.update(read_safetensors(os.path.join(d, name)))
    return w


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat((-x[..., h:], x[..., :h]), dim=-1)


def rms_norm(x, g, eps):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * g


def llama_logits(cfg, w, ids):
    """ids: LongTensor [B, T] -> logits [B, T, V], float64."""
    C, H = cfg["hidden_size"], cfg["num_attention_heads"]
    KV = cfg.get("num_key_value_heads") or H
    D, eps = C // H, cfg.get("rms_norm_eps", 1e-6)
    theta = cfg.get("rope_theta", 10000.0)
    B, T = ids.shape
    inv_freq = 1.0 / (theta ** (torch.arange(0, D, 2, dtype=torch.float64) / D))
    ang = torch.outer(torch.arange(T, dtype=torch.float64), inv_freq)
    emb = torch.cat((ang, ang), dim=-1)  # [T, D]
    cos, sin = emb.cos(), emb.sin()
    x = w["model.embed_tokens.weight"][ids]
    mask = torch.full((T, T), float("-inf"), dtype=torch.float64).triu(1)
    for l in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{l}."
        h = rms_norm(x, w[p + "input_layernorm.weight"], eps)
        q = (h @ w[p + "self_attn.q_proj.weight"].T).view(B, T, H, D).transpose(1, 2)
        k = (h @ w[p + "self_attn.k_proj.weight"].T).view(B, T, KV, D).transpose(1, 2)
        v = (h @ w[p + "self_attn.v_proj.weight"].T).view(B, T, KV, D).transpose(1, 2)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        k = k.repeat_interleave(H // KV, dim=1)
        v = v.repeat_interleave(H // KV, dim=1)
        s = q @ k.transpose(-1, -2) / (D ** 0.5) + mask
        a = (torch.softmax(s, dim=-1) @ v).transpose(1, 2).reshape(B, T, C)
        x = x + a @ w[p + "self_attn.o_proj.weight"].T
        h = rms_norm(x, w[p + "post_attention_layernorm.weight"], eps)
        g = h @ w[p + "mlp.gate_proj.weight"].T
        u = h @ w[p + "mlp.up_proj.weight"].T
        x = x + (torch.nn.functional.silu(g) * u) @ w[p + "mlp.down_proj.weight"].T
    x = rms_norm(x, w["model.norm.weight"], eps)
    head = w["model.embed_tokens.weight"] if cfg.get("tie_word_embeddings") else w["lm_head.weight"]
    return x @ head.T


def check(d, tol):
    with open(os.path.join(d, "config.json")) as f:
        cfg = json.load(f)
    with open(os.path.join(d, "seq_len.txt")) as f:
        T = int(f.read())
    ids = np.fromfile(os.path.join(d, "ids.i32"), dtype="<i4").astype(np.int64)
    ids = torch.from_numpy(ids).view(-1, T)
    ref = llama_logits(cfg, read_weights(d), ids).reshape(-1, cfg["vocab_size"])
    got = np.fromfile(os.path.join(d, "logits.f32"), dtype="<f4").astype(np.float64)
    got = torch.from_numpy(got)
    if got.numel() != ref.numel():
        print(f"{d}: {got.numel()} logits, the reference has {ref.numel()}")
        return False
    got = got.view_as(ref)
    diff = (got - ref).abs().max().item()
    scale = ref.abs().max().item()
    rel = diff / scale
    agree = (got.argmax(1) == ref.argmax(1)).double().mean().item()
    print(f"{d}: {ref.shape[0]} positions x {ref.shape[1]} logits; max |mxqat - torch| = "
          f"{diff:.3e}, max |torch| = {scale:.3f}, relative {rel:.3e} (tolerance {tol:g}); "
          f"argmax agree {agree:.3f}")
    return rel <= tol


def main(argv):
    args = argv[1:]
    tol = 1e-4
    if "--tol" in args:
        i = args.index("--tol")
        tol = float(args[i + 1])
        del args[i:i + 2]
    if not args:
        raise SystemExit(__doc__)
    ok = [check(d, tol) for d in args]
    return 0 if all(ok) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
