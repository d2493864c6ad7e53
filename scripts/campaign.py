#!/usr/bin/env python3
"""Hostile-input campaign against the mxqat executable (issue 14's bars), runnable by hand.

  /usr/bin/python3 scripts/campaign.py [--mxqat build/mxqat] [--mutants 2000] [--kills 20]
                                       [--run-kills 4] [--seed 1] [--work DIR] [--keep]

What it does, each part counted separately in the summary (and in DIR/campaign.json):
  mutants   every file the program reads (recipe, checkpoint, export, quantize output, raw
            float32 input, foreign HDF5 input, Fashion-MNIST .gz files, metrics/summary JSON of a
            run directory) mutated (bit flips, truncation, extension, zeroed or copied ranges,
            splices) and fed to the commands that read it;
  resealed  the same for mxqat's HDF5 files, with the integrity block recomputed after the
            mutation (a hostile user forging the checksum): HDF5 parses them; informational;
  kills     kill -9 at random moments of `train` (and `run`), then the same command again:
            the result must equal an uninterrupted run's bit for bit, metrics.jsonl included;
  disk full RLIMIT_FSIZE with SIGXFSZ ignored (writes fail with EFBIG) during train, export,
            quantize and run: a message naming the problem, exit 1, no partial file;
  links     symbolic links planted at every name mxqat writes: their targets stay untouched;
  fifos     a FIFO (and /dev/zero) in place of each input: a message, never a block.
Each run must exit 0 or 1 (never a signal, 2+ is a usage error and allowed only for bad
arguments), finish within the timeout, print "error:" with a message that is not "unexpected
error", and leave every input file byte-identical. Exit status: 0 if every bar holds.
"""
import argparse
import hashlib
import json
import os
import random
import re
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time

TINY = """name: campaign
seed: 7
data: {dataset: fashion_mnist, dir: DATA_DIR, batch_size: 32, val_size: 64, train_limit: 256, test_limit: 64}
model: {type: mlp, hidden: [8], activation: relu}
train: {steps: 12, log_every: 2, eval_every: 4, checkpoint_every: 2, optimizer: {type: adamw, lr: 3.0e-3}}
quant: {weight: mxfp4, input: mxfp8_e4m3}
qat: {steps: 6, optimizer: {type: adamw, lr: 1.0e-3}}
ptq: {methods: [rtn], calib_samples: 32}
compare: {formats: [mxfp4], qat_direct: true, qat_progressive: false}
"""
SEAL = 512
FASHION = None  # the Fashion-MNIST directory (--data-dir)


class Campaign:
    def __init__(self, args):
        self.a = args
        self.rng = random.Random(args.seed)
        self.work = args.work or tempfile.mkdtemp(prefix="mxqat_campaign_")
        os.makedirs(self.work, exist_ok=True)
        self.stats = {}
        self.failures = []
        self.env = dict(os.environ, OMP_NUM_THREADS="1", OMP_WAIT_POLICY="passive")

    # ---- running mxqat --------------------------------------------------------------------
    def mxqat(self, args, timeout=120, preexec=None, cwd=None):
        t0 = time.time()
        try:
            p = subprocess.run([self.a.mxqat] + args, capture_output=True, timeout=timeout,
                               env=self.env, preexec_fn=preexec, cwd=cwd)
            return p.returncode, (p.stdout + p.stderr).decode("utf-8", "replace"), time.time() - t0
        except subprocess.TimeoutExpired as e:
            return "hang", ((e.stdout or b"") + (e.stderr or b"")).decode("utf-8", "replace"), timeout

    def count(self, part, key):
        self.stats.setdefault(part, {}).setdefault(key, 0)
        self.stats[part][key] += 1

    def fail(self, part, what):
        self.count(part, "failures")
        if len(self.failures) < 200:
            self.failures.append(f"[{part}] {what}")

    def judge(self, part, args, rc, out, inputs_before, allow_ok=True):
        """Counts one run; records a failure for a crash, a hang, a bad message or a changed input."""
        self.count(part, "runs")
        cmd = " ".join(args)
        if rc == "hang":
            self.fail(part, f"hang: mxqat {cmd}")
            return
        if rc < 0 or rc >= 128:
            self.fail(part, f"crash (rc {rc}): mxqat {cmd}\n{out[-600:]}")
            return
        if rc == 0:
            self.count(part, "accepted" if allow_ok else "accepted_unexpectedly")
        elif rc == 1:
            self.count(part, "refused")
            if "error:" not in out or "unexpected error" in out:
                self.fail(part, f"message without a cause/fix: mxqat {cmd}\n{out[-400:]}")
        else:
            self.count(part, f"rc{rc}")
        for path, digest in inputs_before.items():
            if digest != file_digest(path):
                self.fail(part, f"input modified: {path} by mxqat {cmd}")

    # ---- setup: one tiny run gives every kind of file ----------------------------------------
    def setup(self):
        w = self.work
        write(f"{w}/tiny.yaml", TINY.replace("DATA_DIR", FASHION))
        rc, out, _ = self.mxqat(["run", f"{w}/tiny.yaml", "--out", f"{w}/run"], timeout=900)
        if rc != 0:
            sys.exit(f"campaign: the reference run failed:\n{out}")
        self.ckpt = f"{w}/run/qat/" + json.load(open(f"{w}/run/qat/summary.json"))["main"] + "/checkpoint.h5"
        self.export = f"{w}/run/export/model.h5"
        vals = struct.pack("<%df" % (4 * 64), *[self.rng.uniform(-3, 3) for _ in range(4 * 64)])
        write(f"{w}/x.f32", vals, binary=True)
        rc, out, _ = self.mxqat(["quantize", "--codec", "nvfp4", "--in", f"{w}/x.f32", "--shape", "4,64",
                                 "--out", f"{w}/q.h5"])
        assert rc == 0, out
        # A foreign HDF5 file (no mxqat block: the magic zeroed; HDF5 still finds its signature
        # after the user block), the kind h5py would write.
        b = bytearray(open(f"{w}/q.h5", "rb").read())
        b[:SEAL] = bytes(SEAL)
        write(f"{w}/foreign.h5", bytes(b), binary=True)
        rc, out, _ = self.mxqat(["quantize", "--codec", "int4_sym", "--group-size", "32", "--in",
                                 f"{w}/x.f32", "--shape", "4,64", "--out", f"{w}/q_int4.h5"])
        assert rc == 0, out

    # ---- mutants ---------------------------------------------------------------------------
    def mutate(self, data):
        b = bytearray(data)
        for _ in range(self.rng.choice([1, 1, 1, 2, 4, 16])):
            op = self.rng.randrange(7)
            n = len(b)
            if n == 0:
                b += bytes(self.rng.randrange(1, 64))
                continue
            i = self.rng.randrange(n)
            if op == 0:
                b[i] ^= 1 << self.rng.randrange(8)
            elif op == 1:
                del b[self.rng.randrange(n):]
            elif op == 2:
                b += bytes(self.rng.randrange(256) for _ in range(self.rng.randrange(1, 256)))
            elif op == 3:
                j = min(n, i + self.rng.randrange(1, 512))
                b[i:j] = bytes(j - i)
            elif op == 4:
                j = min(n, i + self.rng.randrange(1, 64))
                k = self.rng.randrange(n)
                b[k:k + (j - i)] = b[i:j]
            elif op == 5:
                b[i] = self.rng.choice([0, 0xFF, 0x7F, 0x80, ord("-"), ord("9")])
            else:
                del b[i:min(n, i + self.rng.randrange(1, 32))]
        return bytes(b)

    def reseal(self, data):
        if len(data) < SEAL + 8:
            return data
        b = bytearray(data)
        b[16:24] = struct.pack("<Q", len(b))
        b[24:56] = hashlib.sha256(bytes(b[SEAL:])).digest()
        return bytes(b)

    def mutant_runs(self, part, n, source, name, commands, reseal=False):
        """commands(path) -> list of argument lists run on the mutant at `path`."""
        original = open(source, "rb").read()
        d = f"{self.work}/{part}_{name}"
        os.makedirs(d, exist_ok=True)
        for k in range(n):
            m = self.mutate(original)
            if reseal:
                m = self.reseal(m)
            path = f"{d}/{name}"
            write(path, m, binary=True)
            for args in commands(path, k):
                before = {path: file_digest(path), source: file_digest(source)}
                rc, out, _ = self.mxqat(args, timeout=self.a.timeout)
                self.judge(part, args, rc, out, before)
                if rc == "hang" or rc < 0 or rc >= 128:
                    shutil.copy(path, f"{d}/crash_{k}_{name}")

    def mutants(self, part, n, reseal=False):
        w, few = self.work, max(1, n // 20)
        out = f"{w}/{part}_out"
        os.makedirs(out, exist_ok=True)
        tiny = f"{w}/tiny.yaml"
        every = lambda k, m: k % m == 0
        self.mutant_runs(part, n, self.ckpt, "checkpoint.h5", lambda p, k: [["inspect", p]] + (
            [["eval", p], ["export", p, "--out", f"{out}/m.h5"],
             ["qat", tiny, "--from", p, "--out", f"{out}/q", "--set", "qat.train.steps=1"],
             ["ptq", tiny, "--from", p, "--out", f"{out}/p"]] if every(k, 20) else []), reseal)
        self.mutant_runs(part, n, self.export, "model.h5", lambda p, k: [["inspect", p]] + (
            [["infer", p, "--limit", "8"], ["verify", p, "--limit", "8", "--out", f"{out}/v.json"],
             ["eval", p]] if every(k, 20) else []), reseal)
        for q in ("q.h5", "q_int4.h5"):
            self.mutant_runs(part, n // 2, f"{w}/{q}", q, lambda p, k: [
                ["dequantize", p, "--out", f"{out}/y.f32"], ["inspect", p]], reseal)
        if reseal:
            return
        self.mutant_runs(part, n // 2, f"{w}/foreign.h5", "foreign.h5", lambda p, k: [
            ["quantize", "--codec", "mxfp4", "--in", p + ":/tensor/codes", "--shape", "4,32",
             "--out", f"{out}/f.h5"], ["dequantize", p, "--out", f"{out}/y.f32"]])
        self.mutant_runs(part, n // 2, f"{w}/x.f32", "x.f32", lambda p, k: [
            ["quantize", "--codec", self.rng.choice(["mxfp4", "nvfp4", "int8_sym", "int4_asym"]),
             "--in", p, "--shape", "4,64", "--out", f"{out}/x.h5"]])
        self.mutant_runs(part, n // 4, tiny, "recipe.yaml", lambda p, k: [
            ["train", p, "--out", f"{out}/t{k % 3}", "--set", "train.steps=1", "--set",
             "data.train_limit=64", "--set", "data.test_limit=32", "--set", "data.val_size=32"]])
        for j in ("metrics.jsonl", "summary.json"):
            self.mutant_runs(part, few, f"{w}/run/baseline/{j}", j, lambda p, k, j=j: self.run_dir_with(p, j, out, k))
        for f in ("t10k-labels-idx1-ubyte.gz",):
            self.mutant_runs(part, few, f"{FASHION}/{f}", f, lambda p, k: self.data_dir_with(p, out, k))
        self.quantize_args(part, n // 2, out)

    def run_dir_with(self, mutant, name, out, k):
        d = f"{out}/rd{k % 2}"
        shutil.rmtree(d, ignore_errors=True)
        shutil.copytree(f"{self.work}/run", d)
        shutil.copy(mutant, f"{d}/baseline/{name}")
        return [["compare", d, "--out", f"{out}/cmp"]]

    def data_dir_with(self, mutant, out, k):
        d = f"{out}/data"
        os.makedirs(d, exist_ok=True)
        for f in os.listdir(FASHION):
            if f.endswith(".gz") and not os.path.exists(f"{d}/{f}"):
                os.symlink(f"{FASHION}/{f}", f"{d}/{f}")
        os.unlink(f"{d}/t10k-labels-idx1-ubyte.gz")
        shutil.copy(mutant, f"{d}/t10k-labels-idx1-ubyte.gz")
        return [["eval", self.ckpt, "--set", f"data.dir={d}"]]

    def quantize_args(self, part, n, out):
        words = ["--codec", "mxfp4", "nvfp4", "int8_sym", "int4_asym", "fp8", "--shape", "4,64",
                 "0,4", "-1", "4294967296", "99999999999999999", "4,64,", ",", "--group-size", "0",
                 "32", "4294967296", "--scale-rule", "floor", "ceil", "--global-amax", "nan",
                 "inf", "-1", "1e39", "--name", "/", "a/../b", "", "--dequant"]
        for k in range(n):
            args = ["quantize", "--in", f"{self.work}/x.f32", "--out", f"{out}/qa.h5"]
            args += [self.rng.choice(words) for _ in range(self.rng.randrange(0, 8))]
            if self.rng.random() < 0.7:
                args += ["--codec", self.rng.choice(words[1:6]), "--shape", self.rng.choice(["4,64", "256", "2,2,64"])]
            args = [a if a != "--dequant" else "--name" for a in args]
            before = {f"{self.work}/x.f32": file_digest(f"{self.work}/x.f32")}
            rc, text, _ = self.mxqat(args, timeout=self.a.timeout)
            self.judge(part, args, rc, text, before)

    # ---- kill -9 -----------------------------------------------------------------------------
    def kills(self, n, run_kills):
        w = self.work
        ref = f"{w}/kill_ref"
        rc, out, t_full = self.mxqat(["train", f"{w}/tiny.yaml", "--out", ref], timeout=600)
        assert rc == 0, out
        ref_params = self.params_digest(f"{ref}/checkpoint.h5")
        assert ref_params, "no weight digests from the reference checkpoint's export"
        ref_metrics = untimed(open(f"{ref}/metrics.jsonl").read())
        for k in range(n):
            d = f"{w}/kill_{k}"
            shutil.rmtree(d, ignore_errors=True)
            p = subprocess.Popen([self.a.mxqat, "train", f"{w}/tiny.yaml", "--out", d], env=self.env,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(self.rng.uniform(0.05, max(0.1, t_full)))
            p.send_signal(signal.SIGKILL)
            p.wait()
            args = ["train", f"{w}/tiny.yaml", "--out", d] + (["--resume"] if os.path.exists(f"{d}/checkpoint.h5") else [])
            rc, out, _ = self.mxqat(args, timeout=600)
            self.judge("kills", args, rc, out, {})
            if rc != 0:
                continue
            if self.params_digest(f"{d}/checkpoint.h5") != ref_params:
                self.fail("kills", f"kill {k}: final weights differ from the uninterrupted run")
            if untimed(open(f"{d}/metrics.jsonl").read()) != ref_metrics:
                self.fail("kills", f"kill {k}: metrics.jsonl differs from the uninterrupted run's")
            if any(".mxqat-tmp-" in f for f in os.listdir(d)):
                self.fail("kills", f"kill {k}: a temporary file was left behind")
        for k in range(run_kills):
            d = f"{w}/runkill_{k}"
            shutil.rmtree(d, ignore_errors=True)
            p = subprocess.Popen([self.a.mxqat, "run", f"{w}/tiny.yaml", "--out", d], env=self.env,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(self.rng.uniform(0.2, 8.0))
            p.send_signal(signal.SIGKILL)
            p.wait()
            rc, out, _ = self.mxqat(["run", f"{w}/tiny.yaml", "--out", d], timeout=900)
            self.judge("kills", ["run", "(after kill -9)"], rc, out, {})
            if rc == 0:
                a = json.load(open(f"{d}/export/alignment.json"))
                if not a.get("bitwise_equal"):
                    self.fail("kills", f"run kill {k}: export not bitwise equal after resume")
                for root, _, files in os.walk(d):
                    if any(".mxqat-tmp-" in f for f in files):
                        self.fail("kills", f"run kill {k}: a temporary file left in {root}")

    def params_digest(self, ckpt):
        """The SHA-256s of the checkpoint's weights, read from an export's manifest (which lists
        one per packed or float32 tensor), so runs compare by value, not by file layout."""
        out = f"{self.work}/digest.h5"
        rc, text, _ = self.mxqat(["export", ckpt, "--out", out])
        if rc != 0:
            return None
        digests = re.findall(rb'"sha256[a-z_]*": "([0-9a-f]{64})"', open(out, "rb").read())
        return b",".join(digests) if digests else None

    # ---- disk full, links, FIFOs -------------------------------------------------------------
    def disk_full(self):
        w = self.work
        import resource

        for kb in (8, 32, 64, 128, 512):
            def limit(kb=kb):
                signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
                resource.setrlimit(resource.RLIMIT_FSIZE, (kb * 1024, kb * 1024))
            big = f"{w}/big.f32"
            if not os.path.exists(big):
                write(big, struct.pack("<%df" % (64 * 4096), *([0.5] * (64 * 4096))), binary=True)
            cases = [
                ["quantize", "--codec", "int8_sym", "--in", big, "--shape", "64,4096", "--out", f"{w}/df/q.h5"],
                ["export", self.ckpt, "--out", f"{w}/df/m.h5"],
                ["train", f"{w}/tiny.yaml", "--out", f"{w}/df/t{kb}"],
            ]
            os.makedirs(f"{w}/df", exist_ok=True)
            for args in cases:
                rc, out, _ = self.mxqat(args, preexec=limit, timeout=600)
                self.judge("disk_full", args, rc, out, {})
                if rc == 1 and "disk full" not in out and "File too large" not in out:
                    self.fail("disk_full", f"no disk-full message: {' '.join(args)}\n{out[-300:]}")
                for root, _, files in os.walk(f"{w}/df"):
                    for f in files:
                        if ".mxqat-tmp-" in f:
                            self.fail("disk_full", f"temporary left: {root}/{f}")
                            os.unlink(f"{root}/{f}")
            shutil.rmtree(f"{w}/df", ignore_errors=True)

    def links(self):
        w = self.work
        victim = f"{w}/victim.txt"
        write(victim, "precious")
        d = f"{w}/links"
        for name in ("checkpoint.h5", "metrics.jsonl", "summary.json", "recipe.yaml", ".mxqat.lock"):
            shutil.rmtree(d, ignore_errors=True)
            os.makedirs(d)
            os.symlink(victim, f"{d}/{name}")
            args = ["train", f"{w}/tiny.yaml", "--out", d, "--set", "train.steps=2"]
            rc, out, _ = self.mxqat(args)
            self.judge("links", args, rc, out, {victim: file_digest(victim)})
        os.makedirs(f"{w}/links2", exist_ok=True)
        for name in ("m.h5", "q.h5", "y.f32"):
            p = f"{w}/links2/{name}"
            if os.path.lexists(p):
                os.unlink(p)
            os.symlink(victim, p)
        for args in (["export", self.ckpt, "--out", f"{w}/links2/m.h5"],
                     ["quantize", "--codec", "mxfp4", "--in", f"{w}/x.f32", "--shape", "4,64", "--out", f"{w}/links2/q.h5"],
                     ["dequantize", f"{w}/q.h5", "--out", f"{w}/links2/y.f32"]):
            rc, out, _ = self.mxqat(args)
            self.judge("links", args, rc, out, {victim: file_digest(victim)})

    def fifos(self):
        w = self.work
        d = f"{w}/fifos"
        shutil.rmtree(d, ignore_errors=True)
        os.makedirs(d)
        fifo = f"{d}/fifo"
        os.mkfifo(fifo)
        cases = [["train", fifo, "--out", f"{d}/t"], ["eval", fifo], ["inspect", fifo],
                 ["export", fifo, "--out", f"{d}/m.h5"], ["verify", fifo],
                 ["quantize", "--codec", "mxfp4", "--in", fifo, "--shape", "4,64", "--out", f"{d}/q.h5"],
                 ["quantize", "--codec", "mxfp4", "--in", "/dev/zero", "--shape", "4,64", "--out", f"{d}/q.h5"],
                 ["dequantize", fifo, "--out", f"{d}/y.f32"], ["infer", self.export, "--input", fifo],
                 ["eval", "/dev/zero"], ["inspect", "/dev/zero"]]
        data = f"{d}/data"
        os.makedirs(data)
        for f in os.listdir(FASHION):
            if f.endswith(".gz"):
                os.symlink(f"{FASHION}/{f}", f"{data}/{f}")
        os.unlink(f"{data}/t10k-images-idx3-ubyte.gz")
        os.mkfifo(f"{data}/t10k-images-idx3-ubyte.gz")
        cases.append(["eval", self.ckpt, "--set", f"data.dir={data}"])
        mdir = f"{d}/mrun"
        os.makedirs(mdir)
        os.mkfifo(f"{mdir}/metrics.jsonl")
        cases.append(["train", f"{w}/tiny.yaml", "--out", mdir, "--set", "train.steps=2"])
        for args in cases:
            rc, out, _ = self.mxqat(args, timeout=30)
            self.judge("fifos", args, rc, out, {}, allow_ok=False)


def untimed(text):
    out = []
    for line in text.splitlines():
        try:
            o = json.loads(line)
        except ValueError:
            out.append(line)
            continue
        for k in list(o):
            if k in ("wall_s", "seconds", "samples_per_s", "tokens_per_s", "step_ms", "elapsed_s"):
                del o[k]
        out.append(json.dumps(o, sort_keys=True))
    return "\n".join(out)


def write(path, data, binary=False):
    with open(path, "wb" if binary else "w") as f:
        f.write(data)


def file_digest(path):
    try:
        with open(path, "rb") as f:
            return hashlib.sha256(f.read()).hexdigest()
    except OSError as e:
        return f"unreadable: {e}"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mxqat", default=os.path.join(os.path.dirname(__file__), "..", "build", "mxqat"))
    ap.add_argument("--mutants", type=int, default=2000, help="mutants per HDF5 file kind")
    ap.add_argument("--resealed", type=int, default=500, help="resealed mutants per HDF5 file kind")
    ap.add_argument("--kills", type=int, default=20)
    ap.add_argument("--run-kills", type=int, default=4)
    ap.add_argument("--timeout", type=int, default=60, help="seconds before a run counts as a hang")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--work", default=None)
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    ap.add_argument("--parts", default="mutants,resealed,kills,disk_full,links,fifos")
    ap.add_argument("--data-dir", default="/usr/share/datasets/fashion-mnist",
                    help="Fashion-MNIST's .gz files (Debian's dataset-fashion-mnist)")
    a = ap.parse_args()
    global FASHION
    FASHION = os.path.abspath(a.data_dir)
    a.mxqat = os.path.abspath(a.mxqat)
    c = Campaign(a)
    t0 = time.time()
    c.setup()
    parts = a.parts.split(",")
    if "mutants" in parts:
        c.mutants("mutants", a.mutants)
    if "resealed" in parts:
        c.mutants("resealed", a.resealed, reseal=True)
    if "kills" in parts:
        c.kills(a.kills, a.run_kills)
    if "disk_full" in parts:
        c.disk_full()
    if "links" in parts:
        c.links()
    if "fifos" in parts:
        c.fifos()
    c.stats["seconds"] = round(time.time() - t0)
    json.dump({"stats": c.stats, "failures": c.failures}, open(f"{c.work}/campaign.json", "w"), indent=1)
    print(json.dumps(c.stats, indent=1))
    for f in c.failures[:40]:
        print("FAIL", f)
    bar_parts = [p for p in parts if p != "resealed"]
    bad = sum(c.stats.get(p, {}).get("failures", 0) for p in bar_parts)
    print(f"campaign: {bad} failures in {', '.join(bar_parts)} ({c.work})")
    if not a.keep and bad == 0:
        shutil.rmtree(c.work, ignore_errors=True)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
