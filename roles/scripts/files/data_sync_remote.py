"""voltx.vastai.data_sync — the target-side helper (stdlib only, Python 3.7+).

Copied to <state>/bin/ by the role and run over ssh by data_sync_transfer.py, or by Ansible.

  plan     --manifest M --root R --state S --margin BYTES
           What is verified, what is partly there, and the disk space the rest needs (JSON).
  receive  --manifest M --root R --state S --archive NAME --from-part [--follow] [--keep-archive]
           Read <state>/archives/<file>.part from its first byte, decompress and unpack it on the fly
           into <state>/extract/<NAME>/, hashing the archive and every member as they pass. With
           --follow the .part is still being written (by the controller's raw writer, `cat >>` over
           its own ssh): a read at its end waits for more until the manifest's size is there, and
           the end of stdin says no more will come. Only when the archive and every member match
           the manifest are the members renamed into place under R and the verified marker
           written. Exit 0 done, 3 the .part ended short (resume it), 4 corrupt, 1 other.
  discard  --manifest M --state S --archive NAME       remove the .part of NAME
  verify   --manifest M --root R --state S [--checksums]
           Presence and size (and sha256 with --checksums) of every file the manifest lists.
"""

import argparse
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import threading
import time

CHUNK = 1 << 20
EXIT_OK, EXIT_FAIL, EXIT_TRUNCATED, EXIT_CORRUPT = 0, 1, 3, 4


def human(n):
    """Bytes in decimal units ("142.5 GB"); None reads as 0. The one copy: the controller-side scripts, which lie
    next to this file (voltx.vastai.scripts), import it from here; this file runs alone on the target."""
    n = float(n or 0)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return ("%d %s" % (n, unit)) if unit == "B" else ("%.1f %s" % (n, unit))
        n /= 1000.0
    return "%d B" % n


def load_manifest(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def archive_of(manifest, name):
    for a in manifest["archives"]:
        if a["name"] == name:
            return a
    raise SystemExit("archive %s is not in the manifest" % name)


class Paths:
    def __init__(self, state, archive):
        self.archives = os.path.join(state, "archives")
        self.part = os.path.join(self.archives, archive["file"] + ".part")
        self.pid = os.path.join(self.archives, archive["file"] + ".pid")
        self.writer = self.part + ".writer"  # the controller's raw writer (`cat >> .part`) keeps its pid there
        self.extract = os.path.join(state, "extract", archive["name"])
        self.markers = os.path.join(state, "verified")
        self.marker = os.path.join(self.markers, archive["name"] + ".verified")


def size_of(path):
    try:
        return os.stat(path).st_size
    except OSError:
        return 0


def write_atomic(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def is_verified(root, paths, archive):
    try:
        with open(paths.marker, encoding="utf-8") as f:
            if f.read().strip() != archive["sha256"]:
                return False
    except OSError:
        return False
    for m in archive["members"]:
        try:
            if os.stat(os.path.join(root, m["path"])).st_size != m["size"]:
                return False
        except OSError:
            return False
    return True


def existing_ancestor(path):
    path = os.path.abspath(path)
    while not os.path.exists(path):
        parent = os.path.dirname(path)
        if parent == path:
            break
        path = parent
    return path


def cmd_plan(a):
    # The exact disk need, per filesystem; before this runs, the controller's transfer job lets bytes out only when the
    # whole manifest fits the archives' filesystem (data_sync_transfer.py, its cheap worst case).
    manifest = load_manifest(a.manifest)
    archives, need = {}, {}
    labels = {}

    def add(path, n):
        dev = os.stat(existing_ancestor(path)).st_dev
        labels.setdefault(dev, path)
        need[dev] = need.get(dev, 0) + n

    add(a.root, 0)
    add(os.path.join(a.state, "archives"), 0)
    margin_dev = os.stat(existing_ancestor(a.root)).st_dev
    totals = {"archives": 0, "extracted": 0}
    for arc in manifest["archives"]:
        p = Paths(a.state, arc)
        part = size_of(p.part)
        if is_verified(a.root, p, arc):
            archives[arc["name"]] = {"status": "verified", "part_size": part, "need": 0}
            continue
        if part > arc["size"]:
            part = 0  # the transfer's raw probe drops it before the first byte
        send = arc["size"] - part
        unpacked = sum(m["size"] for m in arc["members"])
        add(p.part, send)
        add(p.extract, unpacked)
        totals["archives"] += send
        totals["extracted"] += unpacked
        archives[arc["name"]] = {"status": "partial" if part else "missing", "part_size": part,
                                 "need": send + unpacked}
    filesystems, ok = [], True
    for dev, label in labels.items():
        st = os.statvfs(existing_ancestor(label))
        free = st.f_bavail * st.f_frsize
        n = need.get(dev, 0)
        if n == 0:
            continue
        if dev == margin_dev:
            n += a.margin
        fs_ok = n <= free
        ok = ok and fs_ok
        filesystems.append({"path": label, "need": n, "free": free, "ok": fs_ok,
                            "need_h": human(n), "free_h": human(free)})
    msgs = ["needs %s, %s free on %s" % (f["need_h"], f["free_h"], f["path"]) for f in filesystems if not f["ok"]]
    message = ""
    if msgs:
        message = ("Not enough disk space on the target for the data: %s (archives %s + extracted %s + margin %s). "
                   "Nothing was sent. Free space there, or rent an instance with a bigger disk "
                   "(data_sync_disk_margin_mb sets the margin)." % (
                       "; ".join(msgs), human(totals["archives"]), human(totals["extracted"]), human(a.margin)))
    print(json.dumps({"archives": archives, "filesystems": filesystems, "ok": ok, "message": message,
                      "todo": sorted(n for n, v in archives.items() if v["status"] != "verified"),
                      "need_archives": totals["archives"], "need_extracted": totals["extracted"]}))
    return EXIT_OK


def stop_stale(paths, archive):
    try:
        with open(paths.pid, encoding="utf-8") as f:
            pid = int(f.read().strip())
    except (OSError, ValueError):
        return
    if pid == os.getpid():
        return
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            cmdline = f.read().decode("utf-8", "replace")
    except OSError:
        cmdline = ""
    if "data_sync_remote" in cmdline and archive["name"] in cmdline:
        try:
            os.kill(pid, signal.SIGTERM)
        except OSError:
            pass
        for _attempt in range(50):
            if not os.path.exists("/proc/%d" % pid):
                break
            time.sleep(0.1)
    try:
        os.unlink(paths.pid)
    except OSError:
        pass


def cmd_discard(a):
    arc = archive_of(load_manifest(a.manifest), a.archive)
    p = Paths(a.state, arc)
    stop_stale(p, arc)
    for path in (p.part, p.writer):
        if os.path.exists(path):
            os.unlink(path)
    shutil.rmtree(p.extract, ignore_errors=True)
    print(json.dumps({"discarded": True}))
    return EXIT_OK


def writer_ended():
    """An event set when stdin ends: the controller holds it open while its raw writer appends to the .part."""
    ended = threading.Event()

    def drain():
        # os.read, not sys.stdin: a daemon thread blocked in a buffered read aborts the interpreter's exit.
        try:
            while os.read(0, 65536):
                pass
        except (OSError, ValueError):
            pass
        ended.set()

    threading.Thread(target=drain, daemon=True).start()
    return ended


class GrowingPart:
    """The .part while another process appends to it. A read at its end waits for more until SIZE bytes were read;
    once ENDED is set, one last read decides: what it finds is returned, nothing means the .part ends short."""

    def __init__(self, path, size, ended, wait=0.2):
        self.path, self.size, self.ended, self.wait = path, size, ended, wait
        self.f, self.got = None, 0

    def read(self, n):
        while True:
            last = self.ended.is_set()
            if self.f is None:
                try:
                    self.f = open(self.path, "rb", buffering=0)
                except FileNotFoundError:
                    pass  # the writer has not created it yet
            if self.f is not None:
                chunk = self.f.read(n)
                if chunk:
                    self.got += len(chunk)
                    return chunk
                if self.got >= self.size:
                    return b""
            if last:
                return b""
            self.ended.wait(self.wait)

    def close(self):
        if self.f is not None:
            self.f.close()


def decompressor(codec):
    if codec == "zstd":
        return ["zstd", "-dcq"]
    if shutil.which("pigz"):
        return ["pigz", "-dc"]
    return ["gzip", "-dc"]


def safe_member_path(name):
    norm = os.path.normpath(name)
    if norm.startswith("/") or norm == ".." or norm.startswith("../") or norm in ("", "."):
        return None
    return norm


def cmd_receive(a):
    manifest = load_manifest(a.manifest)
    arc = archive_of(manifest, a.archive)
    p = Paths(a.state, arc)
    os.makedirs(p.archives, exist_ok=True)
    stop_stale(p, arc)
    write_atomic(p.pid, str(os.getpid()))
    # A hang-up (the ssh link dropped) ends this reader as truncated: the .part stays for the next attempt.
    signal.signal(signal.SIGHUP, lambda *_: os._exit(EXIT_TRUNCATED))
    signal.signal(signal.SIGTERM, lambda *_: os._exit(EXIT_TRUNCATED))
    shutil.rmtree(p.extract, ignore_errors=True)
    os.makedirs(p.extract)
    expected = {m["path"]: m for m in arc["members"]}

    source = GrowingPart(p.part, arc["size"], writer_ended()) if a.follow else open(p.part, "rb", buffering=0)
    dec = subprocess.Popen(decompressor(arc.get("codec", "zstd")), stdin=subprocess.PIPE,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    feed = {"bytes": 0, "sha": hashlib.sha256(), "error": None}

    def feeder():
        feeding = True
        try:
            while True:
                chunk = source.read(CHUNK)
                if not chunk:
                    break
                feed["bytes"] += len(chunk)
                feed["sha"].update(chunk)
                if feeding:
                    try:
                        dec.stdin.write(chunk)
                    except (BrokenPipeError, ValueError, OSError):
                        feeding = False  # keep hashing: the sha256 names what went wrong
        except Exception as exc:  # pylint: disable=broad-except
            feed["error"] = str(exc)
        finally:
            try:
                dec.stdin.close()
            except OSError:
                pass

    t = threading.Thread(target=feeder, daemon=True)
    t.start()
    got, problems, extract_error = {}, [], None
    try:
        with tarfile.open(fileobj=dec.stdout, mode="r|") as tar:
            for ti in tar:
                if ti.isdir():
                    continue
                name = safe_member_path(ti.name)
                if name is None or not ti.isfile():
                    raise ValueError("unexpected tar member %r (type %r)" % (ti.name, ti.type))
                if name not in expected:
                    raise ValueError("tar member %s is not in the manifest" % name)
                if name in got:
                    raise ValueError("tar member %s appears twice" % name)
                dest = os.path.join(p.extract, name)
                os.makedirs(os.path.dirname(dest), exist_ok=True)
                h, n = hashlib.sha256(), 0
                src = tar.extractfile(ti)
                with open(dest, "wb", buffering=0) as out:
                    while True:
                        chunk = src.read(CHUNK)
                        if not chunk:
                            break
                        h.update(chunk)
                        out.write(chunk)
                        n += len(chunk)
                    os.fsync(out.fileno())
                got[name] = {"size": n, "sha256": h.hexdigest()}
        while dec.stdout.read(CHUNK):
            pass
    except Exception as exc:  # pylint: disable=broad-except
        extract_error = str(exc) or exc.__class__.__name__
        dec.kill()
    t.join()
    dec.wait()
    dec_err = dec.stderr.read().decode("utf-8", "replace").strip()
    source.close()
    received, sha = feed["bytes"], feed["sha"].hexdigest()
    result = {"archive": arc["name"], "received": received, "size": arc["size"], "sha256": sha}

    def fail(code, msg):
        shutil.rmtree(p.extract, ignore_errors=True)
        try:
            os.unlink(p.pid)
        except OSError:
            pass
        result.update({"ok": False, "code": code, "msg": msg})
        emit(result)
        return code

    if a.follow and received < arc["size"]:
        return fail(EXIT_TRUNCATED, "the .part ended after %s of %s: its writer stopped (%s)" % (
            human(received), human(arc["size"]), feed["error"] or "stdin closed"))
    if received != arc["size"] or sha != arc["sha256"]:
        return fail(EXIT_CORRUPT, "archive differs from the manifest: %d bytes, sha256 %s (manifest: %d bytes, %s)" % (
            received, sha, arc["size"], arc["sha256"]))
    if dec.returncode not in (0, -9) or extract_error:
        return fail(EXIT_CORRUPT, "unpacking failed: %s" % (extract_error or dec_err or "rc %s" % dec.returncode))
    for name, m in sorted(expected.items()):
        g = got.get(name)
        if g is None:
            problems.append("%s missing from the archive" % name)
        elif g["size"] != m["size"] or g["sha256"] != m["sha256"]:
            problems.append("%s: %d bytes sha256 %s, manifest %d bytes %s" % (
                name, g["size"], g["sha256"], m["size"], m["sha256"]))
    if problems:
        return fail(EXIT_CORRUPT, "extracted files differ from the manifest: " + "; ".join(problems))

    # Everything matches: rename into place (same filesystem, atomic per file), then the marker.
    for name in sorted(expected):
        dest = os.path.join(a.root, name)
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        os.replace(os.path.join(p.extract, name), dest)
    write_atomic(p.marker, arc["sha256"] + "\n")
    shutil.rmtree(p.extract, ignore_errors=True)
    for path in (p.pid, p.writer) if a.keep_archive else (p.pid, p.writer, p.part):
        try:
            os.unlink(path)
        except OSError:
            pass
    result.update({"ok": True, "code": EXIT_OK, "members": len(expected)})
    emit(result)
    return EXIT_OK


def emit(obj):
    try:
        sys.stdout.write(json.dumps(obj) + "\n")
        sys.stdout.flush()
    except OSError:
        pass


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def cmd_verify(a):
    manifest = load_manifest(a.manifest)
    files, problems, archives = [], [], {}
    jobs = []
    for arc in manifest["archives"]:
        p = Paths(a.state, arc)
        try:
            with open(p.marker, encoding="utf-8") as f:
                marker_ok = f.read().strip() == arc["sha256"]
        except OSError:
            marker_ok = False
        archives[arc["name"]] = {"verified_marker": marker_ok}
        if not marker_ok:
            problems.append("%s: not verified on this host (no marker for sha256 %s...)" % (
                arc["name"], arc["sha256"][:12]))
        for m in arc["members"]:
            path = os.path.join(a.root, m["path"])
            entry = {"path": m["path"], "expected_size": m["size"], "size": None, "archive": arc["name"]}
            try:
                entry["size"] = os.stat(path).st_size
            except OSError:
                problems.append("%s is missing" % path)
            else:
                if entry["size"] != m["size"]:
                    problems.append("%s is %s bytes, expected %s" % (path, entry["size"], m["size"]))
                elif a.checksums:
                    jobs.append((entry, path, m["sha256"]))
            files.append(entry)
    if jobs:
        threads_n = max(1, min(len(jobs), os.cpu_count() or 1, 8))
        lock = threading.Lock()

        def work():
            while True:
                with lock:
                    if not jobs:
                        return
                    entry, path, want = jobs.pop()
                got = sha256_file(path)
                entry["sha256_ok"] = got == want
                if got != want:
                    with lock:
                        problems.append("%s: sha256 %s, expected %s" % (path, got, want))

        ts = [threading.Thread(target=work) for _thread in range(threads_n)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
    lines = ["%-60s %10s" % (f["path"], human(f["size"]) if f["size"] is not None else "MISSING") for f in files]
    print(json.dumps({"ok": not problems, "problems": sorted(problems), "files": files, "archives": archives,
                      "lines": lines, "total": sum(f["size"] or 0 for f in files)}))
    return EXIT_OK


def main(argv=None):
    ap = argparse.ArgumentParser(prog="data_sync_remote.py")
    sub = ap.add_subparsers(dest="cmd")
    for name in ("plan", "receive", "discard", "verify"):
        s = sub.add_parser(name)
        s.add_argument("--manifest", required=True)
        s.add_argument("--state", required=True)
        if name in ("plan", "receive", "verify"):
            s.add_argument("--root", required=True)
        if name in ("receive", "discard"):
            s.add_argument("--archive", required=True)
        if name == "plan":
            s.add_argument("--margin", type=int, default=0)
        if name == "receive":
            s.add_argument("--from-part", action="store_true", required=True,
                           help="read the .part (the only source: the bytes reach it over the raw writer's ssh)")
            s.add_argument("--follow", action="store_true",
                           help="the .part is still growing; the end of stdin says its writer has ended")
            s.add_argument("--keep-archive", action="store_true")
        if name == "verify":
            s.add_argument("--checksums", action="store_true")
    a = ap.parse_args(argv)
    handler = {"plan": cmd_plan, "receive": cmd_receive,
               "discard": cmd_discard, "verify": cmd_verify}.get(a.cmd)
    if handler is None:
        ap.print_help()
        return EXIT_FAIL
    return handler(a)


if __name__ == "__main__":
    sys.exit(main())
