# Independent check of an mxqat export with h5py + ml_dtypes (run where they are installed, e.g. the
# device machine): decodes each MX weight from its spec §9 codes and scales by hand and compares
# it bit for bit with `mxqat dequantize FILE --name tensors/NAME --out DIR/NAME.f32`.
# Usage: python3 scripts/check_export_h5py.py MODEL.h5 DIR_WITH_F32_FILES
import h5py, numpy as np, ml_dtypes, json, sys
f = h5py.File(sys.argv[1], "r")
print("root attrs", dict(f.attrs))
man = json.loads(f["manifest"][()].decode() if isinstance(f["manifest"][()], bytes) else f["manifest"][()])
print("verification", man["verification"])
lut4 = np.arange(16, dtype=np.uint8).view(ml_dtypes.float4_e2m1fn).astype(np.float32) if hasattr(ml_dtypes,'float4_e2m1fn') else None
for name in ["fc1.weight", "fc2.weight", "head.weight"]:
    g = f["tensors/" + name]
    a = dict(g.attrs)
    codes, scales = g["codes"][()], g["scales"][()]
    R, K = [int(x) for x in a["shape"]]
    codec = a["codec"].decode() if isinstance(a["codec"], bytes) else a["codec"]
    nb = scales.shape[1]
    if codec == "mxfp4":
        lo, hi = codes & 15, codes >> 4
        el = np.empty((R, codes.shape[1] * 2), np.uint8); el[:, 0::2] = lo; el[:, 1::2] = hi
        vals = el.view(ml_dtypes.float4_e2m1fn).astype(np.float32)
    elif codec == "mxfp8_e4m3":
        vals = codes.view(ml_dtypes.float8_e4m3fn).astype(np.float32)
    s = np.exp2(scales.astype(np.float64) - 127).astype(np.float32)
    w = (vals[:, :nb * 32].reshape(R, nb, 32) * s[:, :, None]).reshape(R, nb * 32)[:, :K]
    ours = np.fromfile(sys.argv[2] + "/" + name + ".f32", dtype=np.float32).reshape(R, K)
    print(name, codec, codes.shape, scales.shape, "bitwise equal to mxqat decode:", np.array_equal(w.view(np.uint32), ours.view(np.uint32)), a)
