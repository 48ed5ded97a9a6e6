"""The one checker of Volt-X training artifacts (installed by voltx.vastai.train_tmux, imported by harvest).

Only the guide's contract is assumed: file names (codebook_code.bin, scaled_vfn_stage1/2.safetensors,
scaled_vfn.safetensors, scaled_vfn_epoch_N.safetensors), that .safetensors files are safetensors (a public
format), and the jobs' exit status. Anything a particular build of the binaries adds is opt-in.

  checkpoint.py check PATH [CODEBOOK OPTIONS]
      structure of a .safetensors file or a codebook .bin; JSON on stdout
  checkpoint.py done PATH [--marker FILE] [CODEBOOK OPTIONS]
      exit 0 when PATH is a finished output: it verifies and FILE (a job's exit marker) records status 0.
      A codebook in the generic format cannot be told apart from one cut short, so it needs --marker.
  checkpoint.py latest PATH [--newer-than FILE]
      prints the newest valid scaled_vfn_epoch_N.safetensors next to PATH written after FILE (none when FILE
      is given but absent: the stage has not started)
  checkpoint.py stage OUTPUT --marker FILE --since FILE --epochs N [--resume-flag FLAG]
      what the curriculum does with a stage: one tab-separated line ACTION, ARG, MESSAGE:
        done     -              the output verifies and the stage's marker records status 0: skip
        fresh    -              not started, or died before its first epoch checkpoint: start
        resume   CHECKPOINT     died after an epoch and train-vfn resumes: FLAG CHECKPOINT
        restart  EPOCHS_LOST    died after an epoch, no resume flag: start over (MESSAGE is the warning)

CODEBOOK OPTIONS: --codebook-format generic|voltx-fixture (generic: present, non-empty, not growing between
two looks --settle S seconds apart, --codebook-size bytes when known; voltx-fixture: also the test fixture's
VXCB header and length), --codebook-size N (0: unknown), --settle S (default 1).

Standard library only; python3 >= 3.6. Exit status: 0 valid/done, 1 invalid or not done, 2 usage.
"""
import argparse
import glob
import json
import os
import re
import struct
import sys
import time

DTYPE_SIZES = {
    "BOOL": 1, "U8": 1, "I8": 1, "F8_E4M3": 1, "F8_E5M2": 1, "U16": 2, "I16": 2, "F16": 2, "BF16": 2,
    "U32": 4, "I32": 4, "F32": 4, "U64": 8, "I64": 8, "F64": 8,
}
MAX_HEADER = 100 * 1024 * 1024
CODEBOOK_FORMATS = ("generic", "voltx-fixture")
FIXTURE_MAGIC = b"VXCB"
EPOCH_RE = re.compile(r"(?:^|/)scaled_vfn_epoch_(\d+)\.safetensors$")


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


def _look(path):
    st = os.stat(path)
    return st.st_size, st.st_mtime_ns


def check_codebook(path, fmt="generic", expected_size=0, settle_s=1.0, wait=None):
    """Generic: present, non-empty, unchanged between two looks SETTLE_S apart, EXPECTED_SIZE bytes when known.

    The real codebook format is unknown; 'voltx-fixture' adds the test fixture's VXCB header and length.
    """
    if fmt not in CODEBOOK_FORMATS:
        raise ValueError("codebook format %r, expected one of %s" % (fmt, ", ".join(CODEBOOK_FORMATS)))
    size, mtime = _look(path)
    if size == 0:
        raise Invalid("empty (0 bytes)")
    if settle_s > 0:
        (wait or time.sleep)(settle_s)
        size2, mtime2 = _look(path)
        if (size2, mtime2) != (size, mtime):
            raise Invalid("still being written: %d bytes, then %d bytes %g s later" % (size, size2, settle_s))
    if expected_size and size != expected_size:
        raise Invalid("%d bytes, %d expected (codebook size setting)" % (size, expected_size))
    info = {"kind": "codebook", "size": size, "format": fmt, "metadata": {}}
    if fmt == "voltx-fixture":
        with open(path, "rb") as f:
            head = f.read(12)
        if len(head) < 12 or head[:4] != FIXTURE_MAGIC:
            raise Invalid("no VXCB codebook header (codebook format voltx-fixture)")
        k, dim = struct.unpack("<II", head[4:12])
        want = 12 + 4 * k * dim
        if k == 0 or dim == 0 or size != want:
            raise Invalid("codebook k=%d dim=%d needs %d bytes, the file has %d" % (k, dim, want, size))
        info.update(k=k, dim=dim)
    return info


def check(path, name=None, codebook_format="generic", codebook_size=0, settle_s=1.0):
    """Structural check, chosen by the extension of NAME (default: PATH)."""
    name = name or path
    if not os.path.isfile(path):
        raise Invalid("missing")
    if name.endswith(".safetensors"):
        return check_safetensors(path)
    if name.endswith(".bin"):
        return check_codebook(path, codebook_format, codebook_size, settle_s)
    return {"kind": "file", "size": os.path.getsize(path), "metadata": {}}


def marker_status(marker):
    """The exit status a job's completion marker records; None when there is none."""
    try:
        with open(marker) as f:
            status = json.load(f).get("status")
    except (OSError, ValueError, AttributeError):
        return None
    return status if isinstance(status, int) else None


def done(path, marker=None, **opts):
    """PATH is a finished output: it verifies and MARKER (when given) records exit status 0."""
    info = check(path, **opts)
    if marker is not None:
        status = marker_status(marker)
        if status != 0:
            raise Invalid("no exit status 0 in %s (%s)" % (marker, "none" if status is None else status))
    elif info["kind"] == "codebook" and info["format"] == "generic":
        raise Invalid("a generic codebook is finished only when its job's marker says so (--marker)")
    return info


def epoch_of(path):
    m = EPOCH_RE.search(path)
    return int(m.group(1)) if m else None


def latest(path, newer_than=None):
    """(epoch, path) of the newest valid epoch checkpoint next to PATH written after the file NEWER_THAN.

    Epoch checkpoints have the same names in every stage; only their age tells the stages apart, so the
    curriculum stamps a file when a stage starts. A NEWER_THAN that does not exist means 'not started'.
    """
    floor = None
    if newer_than:
        if not os.path.exists(newer_than):
            return None
        floor = os.stat(newer_than).st_mtime_ns
    best = None
    for ck in glob.glob(os.path.join(os.path.dirname(path) or ".", "scaled_vfn_epoch_*.safetensors")):
        epoch = epoch_of(ck)
        try:
            if epoch is None or (floor is not None and os.stat(ck).st_mtime_ns <= floor):
                continue
            check_safetensors(ck)
        except (Invalid, OSError):
            continue
        if best is None or epoch > best[0]:
            best = (epoch, ck)
    return best


def stage_decision(output, marker, since, epochs, resume_flag=""):
    """(action, arg, message) for a stage of the curriculum; see the module's doc."""
    try:
        done(output, marker)
        return "done", "-", "%s already there and verified; skipping" % output
    except (Invalid, OSError):
        pass
    best = latest(output, since) if since and os.path.exists(since) else None
    if best is None:
        if since and os.path.exists(since):
            return "fresh", "-", "the stage died before its first epoch checkpoint; starting it over (no epoch lost)"
        return "fresh", "-", "starting"
    epoch, ck = best
    if resume_flag:
        return "resume", ck, "resuming from %s (epoch %d of %d) with %s" % (ck, epoch, epochs, resume_flag)
    return "restart", str(epoch), (
        "WARNING: the stage died after epoch %d of %d, but train-vfn has no resume flag (train_tmux_resume_flag): "
        "restarting it from its start; %d completed epoch(s) lost and trained again" % (epoch, epochs, epoch))


def _parser():
    p = argparse.ArgumentParser(prog="checkpoint.py", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("command", choices=("check", "done", "latest", "stage"))
    p.add_argument("path")
    p.add_argument("--codebook-format", choices=CODEBOOK_FORMATS, default="generic")
    p.add_argument("--codebook-size", type=int, default=0)
    p.add_argument("--settle", type=float, default=1.0)
    p.add_argument("--marker")
    p.add_argument("--newer-than")
    p.add_argument("--since")
    p.add_argument("--epochs", type=int, default=0)
    p.add_argument("--resume-flag", default="")
    return p


def main(argv):
    a = _parser().parse_args(argv)
    opts = {"codebook_format": a.codebook_format, "codebook_size": a.codebook_size, "settle_s": a.settle}
    try:
        if a.command == "check":
            print(json.dumps(dict(check(a.path, **opts), path=a.path, valid=True)))
        elif a.command == "done":
            done(a.path, a.marker, **opts)
        elif a.command == "latest":
            best = latest(a.path, a.newer_than)
            if best:
                print(best[1])
        else:
            print("\t".join(stage_decision(a.path, a.marker, a.since, a.epochs, a.resume_flag)))
        return 0
    except (Invalid, OSError) as exc:
        if a.command == "check":
            print(json.dumps({"path": a.path, "valid": False, "error": str(exc)}))
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
