"""Checks the training artifacts on the instance (deployed by voltx.vastai.train_tmux).

  checkpoint.py check PATH                      structure of a .safetensors file or a codebook .bin; JSON on stdout
  checkpoint.py done PATH [--epochs N]          exit 0 when PATH is a finished stage output (valid, epoch >= N,
                                                stage_output metadata naming PATH when present)
  checkpoint.py latest PATH [--newer-than F]    prints the newest valid scaled_vfn_epoch_*.safetensors next to
                                                PATH that belongs to the stage writing PATH (empty when none)

Standard library only; python3 >= 3.6. Exit status: 0 valid, 1 invalid or not done, 2 usage.
"""
import glob
import json
import os
import re
import struct
import sys

DTYPE_SIZES = {
    "BOOL": 1, "U8": 1, "I8": 1, "F8_E4M3": 1, "F8_E5M2": 1, "U16": 2, "I16": 2, "F16": 2, "BF16": 2,
    "U32": 4, "I32": 4, "F32": 4, "U64": 8, "I64": 8, "F64": 8,
}
MAX_HEADER = 100 * 1024 * 1024
CODEBOOK_MAGIC = b"VXCB"


class Invalid(Exception):
    pass


def check_safetensors(path):
    size = os.path.getsize(path)
    if size < 8:
        raise Invalid("%d bytes, shorter than the 8-byte header length (truncated)" % size)
    with open(path, "rb") as f:
        (hlen,) = struct.unpack("<Q", f.read(8))
        if hlen == 0 or hlen > MAX_HEADER or 8 + hlen > size:
            raise Invalid("header length %d does not fit in a %d-byte file (truncated or corrupt)" % (hlen, size))
        raw = f.read(hlen)
    try:
        header = json.loads(raw.decode("utf-8"))
    except ValueError as exc:
        raise Invalid("header is not valid JSON (%s)" % exc)
    if not isinstance(header, dict):
        raise Invalid("header is not a JSON object")
    meta = header.pop("__metadata__", None) or {}
    if not isinstance(meta, dict):
        raise Invalid("__metadata__ is not an object")
    spans = []
    for name, t in header.items():
        if not isinstance(t, dict) or t.get("dtype") not in DTYPE_SIZES:
            raise Invalid("tensor %r has no known dtype" % name)
        shape, offs = t.get("shape"), t.get("data_offsets")
        if not isinstance(shape, list) or not all(isinstance(d, int) and d >= 0 for d in shape):
            raise Invalid("tensor %r has a bad shape" % name)
        if not (isinstance(offs, list) and len(offs) == 2 and all(isinstance(o, int) for o in offs)
                and 0 <= offs[0] <= offs[1]):
            raise Invalid("tensor %r has bad data_offsets" % name)
        n = DTYPE_SIZES[t["dtype"]]
        for d in shape:
            n *= d
        if n != offs[1] - offs[0]:
            raise Invalid("tensor %r: shape needs %d bytes, data_offsets span %d" % (name, n, offs[1] - offs[0]))
        spans.append(offs)
    spans.sort()
    end = 0
    for b, e in spans:
        if b != end:
            raise Invalid("tensor data is not contiguous at byte %d" % b)
        end = e
    data = size - 8 - hlen
    if data != end:
        raise Invalid("tensors need %d data bytes, the file has %d (%s)"
                      % (end, data, "truncated" if data < end else "trailing bytes"))
    return {"kind": "safetensors", "size": size, "tensors": len(spans), "metadata": meta}


def check_codebook(path):
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        head = f.read(12)
    if len(head) < 12 or head[:4] != CODEBOOK_MAGIC:
        raise Invalid("no VXCB codebook header")
    k, dim = struct.unpack("<II", head[4:12])
    want = 12 + 4 * k * dim
    if k == 0 or dim == 0 or size != want:
        raise Invalid("codebook k=%d dim=%d needs %d bytes, the file has %d" % (k, dim, want, size))
    return {"kind": "codebook", "size": size, "k": k, "dim": dim, "metadata": {}}


def check(path):
    if not os.path.isfile(path):
        raise Invalid("missing")
    if path.endswith(".safetensors"):
        return check_safetensors(path)
    if path.endswith(".bin"):
        return check_codebook(path)
    return {"kind": "file", "size": os.path.getsize(path), "metadata": {}}


def _int(v, default=None):
    try:
        return int(str(v))
    except ValueError:
        return default


def stage_done(path, epochs):
    info = check(path)
    meta = info["metadata"]
    name = os.path.basename(path)
    if "stage_output" in meta and meta["stage_output"] != name:
        raise Invalid("belongs to stage output %s" % meta["stage_output"])
    if epochs and "epoch" in meta and _int(meta["epoch"], -1) < epochs:
        raise Invalid("at epoch %s of %d" % (meta["epoch"], epochs))
    return info


def latest(path, newer_than=None):
    """Newest valid epoch checkpoint written by the stage whose output is PATH."""
    name = os.path.basename(path)
    floor = os.path.getmtime(newer_than) if newer_than and os.path.exists(newer_than) else None
    best = None
    for ck in glob.glob(os.path.join(os.path.dirname(path) or ".", "scaled_vfn_epoch_*.safetensors")):
        try:
            meta = check_safetensors(ck)["metadata"]
        except (Invalid, OSError):
            continue
        if "stage_output" in meta:
            if meta["stage_output"] != name:
                continue
        elif floor is not None and os.path.getmtime(ck) <= floor:
            continue
        m = re.search(r"_epoch_(\d+)\.safetensors$", ck)
        epoch = _int(meta.get("epoch"), int(m.group(1)))
        if best is None or epoch > best[0]:
            best = (epoch, ck)
    return best


def main(argv):
    if len(argv) < 2 or argv[0] not in ("check", "done", "latest"):
        sys.stderr.write(__doc__)
        return 2
    cmd, path, rest = argv[0], argv[1], argv[2:]
    opts = dict(zip(rest[::2], rest[1::2]))
    try:
        if cmd == "check":
            print(json.dumps(dict(check(path), path=path, valid=True)))
        elif cmd == "done":
            stage_done(path, _int(opts.get("--epochs", "0"), 0))
        else:
            best = latest(path, opts.get("--newer-than"))
            if best:
                print(best[1])
        return 0
    except (Invalid, OSError) as exc:
        if cmd == "check":
            print(json.dumps({"path": path, "valid": False, "error": str(exc)}))
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
