#!/usr/bin/env python3
"""Independent check of an mxqat compressed-tensors export (numpy only, no mxqat code).

    scripts/check_compressed_tensors.py DIR --export MODEL.h5 [--mxqat build/mxqat]

DIR holds config.json and model.safetensors written by
`mxqat export MODEL.h5 --format compressed-tensors --out DIR`. This script parses the safetensors
file itself (8-byte header length, JSON header, raw little-endian data), reads the
quantization_config, and decodes every packed Linear weight the way a compressed-tensors reader
does:
  mxfp4-pack-quantized: weight_packed uint8 [out, in/2] (element 2i in the low nibble, 2i+1 in
      the high nibble, E2M1 codes), weight_scale uint8 [out, in/32] (E8M0: 2^(code - 127));
      value = e2m1(code) * 2^(scale - 127).
  nvfp4-pack-quantized: weight_packed as above, weight_scale float8_e4m3fn [out, in/16],
      weight_global_scale float32 [1] (the divisor); value = e2m1(code) * (scale / global),
      computed two ways: as docs/formats.md §5 defines the decode scale, RN32(scale * RN32(1 /
      global)), which must equal mxqat bit for bit, and as compressed-tensors' own division
      RN32(scale / global), whose last-bit differences are counted and reported.
It undoes Hugging Face's q/k row order (rotate_half halves -> adjacent pairs) with its own
permutation and compares every decoded weight bit for bit with mxqat's decode of the same tensor
in the HDF5 export (`mxqat dequantize MODEL.h5 --name tensors/<name>`: the only use of mxqat).
Exits 1 on any mismatch.
"""
import argparse
import json
import os
import struct
import subprocess
import sys
import tempfile

import numpy as np

E2M1 = np.array([0, 0.5, 1, 1.5, 2, 3, 4, 6, -0.0, -0.5, -1, -1.5, -2, -3, -4, -6], dtype=np.float32)


def e4m3_table():
    """float32 value of every OCP E4M3 ('e4m3fn') code: bias 7, no Inf, 0x7F/0xFF NaN."""
    t = np.zeros(256, dtype=np.float32)
    for c in range(256):
        s, e, m = c >> 7, (c >> 3) & 0xF, c & 0x7
        if e == 0xF and m == 0x7:
            v = np.nan
        elif e == 0:
            v = m / 8.0 * 2.0 ** -6
        else:
            v = (1 + m / 8.0) * 2.0 ** (e - 7)
        t[c] = np.float32(-v if s else v)
    return t


DTYPES = {"F32": np.float32, "BF16": np.uint16, "U8": np.uint8, "F8_E4M3": np.uint8}


def read_safetensors(path):
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    data = raw[8 + n:]
    out = {}
    for name, e in header.items():
        if name == "__metadata__":
            continue
        b, end = e["data_offsets"]
        arr = np.frombuffer(data[b:end], dtype=DTYPES[e["dtype"]]).reshape(e["shape"])
        out[name] = (e["dtype"], arr)
    return out


def unpack_fp4(packed):
    """uint8 [R, K/2] -> E2M1 codes [R, K]: element 2i low nibble, 2i+1 high nibble."""
    codes = np.empty((packed.shape[0], packed.shape[1] * 2), dtype=np.uint8)
    codes[:, 0::2] = packed & 0x0F
    codes[:, 1::2] = packed >> 4
    return codes


def decode_mxfp4(packed, scale):
    codes = unpack_fp4(packed)
    s = np.ldexp(np.float32(1), scale.astype(np.int32) - 127).astype(np.float32)  # exact, 2^-127 included
    return (E2M1[codes] * np.repeat(s, 32, axis=1)).astype(np.float32)


def decode_nvfp4(packed, scale_codes, global_scale, division):
    sb = e4m3_table()[scale_codes]
    g = np.float32(global_scale)
    d = (sb / g) if division else (sb * (np.float32(1) / g))
    d = d.astype(np.float32)
    return (E2M1[unpack_fp4(packed)] * np.repeat(d, 16, axis=1)).astype(np.float32)


def hf_to_ours_rows(w, head_dim):
    """Rows in Hugging Face's rotate_half order -> adjacent-pair order (each head of head_dim)."""
    R = w.shape[0]
    half = head_dim // 2
    out = np.empty_like(w)
    for r in range(R):
        h, j = divmod(r, head_dim)
        out[h * head_dim + 2 * (j % half) + j // half] = w[r]
    return out


def our_name(hf):
    """model.layers.3.self_attn.q_proj -> blocks.3.attn.q (module names, no .weight)."""
    parts = {"self_attn.q_proj": "attn.q", "self_attn.k_proj": "attn.k", "self_attn.v_proj": "attn.v",
             "self_attn.o_proj": "attn.o", "mlp.gate_proj": "mlp.gate", "mlp.up_proj": "mlp.up",
             "mlp.down_proj": "mlp.down"}
    if hf == "lm_head":
        return "head"
    pre = "model.layers."
    assert hf.startswith(pre), hf
    n, rest = hf[len(pre):].split(".", 1)
    return f"blocks.{n}.{parts[rest]}"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dir")
    ap.add_argument("--export", required=True, help="the HDF5 export the directory was made from")
    ap.add_argument("--mxqat", default="build/mxqat")
    a = ap.parse_args()
    cfg = json.load(open(os.path.join(a.dir, "config.json")))
    q = cfg["quantization_config"]
    assert q["quant_method"] == "compressed-tensors" and q["quantization_status"] == "compressed", q
    tensors = read_safetensors(os.path.join(a.dir, "model.safetensors"))
    head_dim = cfg.get("head_dim") or cfg["hidden_size"] // cfg["num_attention_heads"]
    failures, report = 0, []
    with tempfile.TemporaryDirectory() as tmp:
        for gname, group in q["config_groups"].items():
            fmt = group["format"]
            w = group["weights"]
            assert w["num_bits"] == 4 and w["type"] == "float" and w["symmetric"], w
            assert (fmt, w["strategy"], w["group_size"]) in (
                ("mxfp4-pack-quantized", "group", 32), ("nvfp4-pack-quantized", "tensor_group", 16)), group
            for module in group["targets"]:
                dt_p, packed = tensors[module + ".weight_packed"]
                dt_s, scale = tensors[module + ".weight_scale"]
                assert dt_p == "U8", (module, dt_p)
                ulp_diffs = 0
                if fmt == "mxfp4-pack-quantized":
                    assert dt_s == "U8" and scale.shape[1] * 32 == packed.shape[1] * 2, (module, dt_s, scale.shape)
                    theirs = decode_mxfp4(packed, scale)
                else:
                    assert dt_s == "F8_E4M3" and scale.shape[1] * 16 == packed.shape[1] * 2, (module, dt_s, scale.shape)
                    _, g = tensors[module + ".weight_global_scale"]
                    theirs = decode_nvfp4(packed, scale, g[0], division=False)
                    ct = decode_nvfp4(packed, scale, g[0], division=True)
                    ulp_diffs = int(np.count_nonzero(ct.view(np.uint32) != theirs.view(np.uint32)))
                if module.endswith(("q_proj", "k_proj")):
                    theirs = hf_to_ours_rows(theirs, head_dim)
                ours_name = our_name(module)
                dump = os.path.join(tmp, ours_name + ".f32")
                subprocess.run([a.mxqat, "dequantize", a.export, "--name", f"tensors/{ours_name}.weight",
                                "--out", dump], check=True, stdout=subprocess.DEVNULL)
                ours = np.fromfile(dump, dtype=np.float32).reshape(theirs.shape)
                bad = int(np.count_nonzero(ours.view(np.uint32) != theirs.view(np.uint32)))
                failures += bad > 0
                report.append({"module": module, "format": fmt, "shape": list(theirs.shape),
                               "bit_mismatches": bad, "ct_division_last_bit_diffs": ulp_diffs})
    for name in q.get("ignore", []):
        assert name + ".weight" in tensors, f"ignored layer {name} has no float weight"
    out = {"dir": a.dir, "format": q["format"], "layers": len(report),
           "elements": int(sum(np.prod(r["shape"]) for r in report)),
           "bit_mismatches": int(sum(r["bit_mismatches"] for r in report)),
           "ct_division_last_bit_diffs": int(sum(r["ct_division_last_bit_diffs"] for r in report)),
           "pass": failures == 0 and len(report) > 0}
    print(json.dumps(out))
    for r in report:
        if r["bit_mismatches"]:
            print("MISMATCH", json.dumps(r), file=sys.stderr)
    return 0 if out["pass"] else 1


if __name__ == "__main__":
    sys.exit(main())
