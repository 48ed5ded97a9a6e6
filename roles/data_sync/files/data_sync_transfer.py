"""voltx.vastai.data_sync — send one archive to the target and have it unpacked as it arrives.

Runs on the controller (started by Ansible with async). Per attempt:
  1. `ssh host data_sync_remote.py probe`: stop a stale receiver, learn the size of the .part.
  2. No .part: stream `ssh host data_sync_remote.py receive < archive` (the target tees it into
     the .part, decompresses and unpacks on the fly, verifies and moves the files into place).
     A .part left by an interrupted attempt: `rsync --append-verify` sends only the missing tail,
     then `receive --from-part` unpacks it from the start.
  3. Exit 3 from the target (input ended early, ssh 255, rsync errors) -> next attempt resumes.
     Exit 4 (corrupt): the local archive is hashed; if it no longer matches the manifest the job
     stops (the damage is local), otherwise the .part is dropped and the next attempt starts over.
Progress (bytes, rate, ETA, attempt, the ssh pid) goes to --progress as JSON; the final result is
one JSON line on stdout. SSH runs with Compression=no and its own connection (no ControlMaster):
the archives are already compressed, and each stream needs its own TCP window.
"""

import argparse
import fcntl
import json
import os
import re
import shlex
import subprocess
import sys
import threading
import time

# One copy of the shared helpers: data_sync_remote.py lies next to this file in the role.
from data_sync_remote import human, sha256_file  # pylint: disable=import-error

CHUNK = 1 << 20


class Job:
    def __init__(self, a):
        self.a = a
        with open(a.manifest, encoding="utf-8") as f:
            manifest = json.load(f)
        self.arc = next(x for x in manifest["archives"] if x["name"] == a.archive)
        self.local = os.path.join(os.path.dirname(os.path.abspath(a.manifest)), self.arc["file"])
        self.size = self.arc["size"]
        self.sent = 0
        self.methods = []
        self.started = time.time()
        self.progress = {"archive": self.arc["name"], "file": self.arc["file"], "state": "queued",
                         "bytes": 0, "total": self.size, "rate": 0.0, "eta": None, "attempt": 0,
                         "method": None, "ssh_pid": None, "sent": 0, "started": self.started}
        self.write_progress()

    # --- plumbing ---------------------------------------------------------------------------
    def write_progress(self, **kw):
        self.progress.update(kw)
        self.progress["updated"] = time.time()
        self.progress["sent"] = self.sent
        tmp = self.a.progress + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(self.progress, f)
        os.replace(tmp, self.a.progress)

    def ssh_base(self):
        cmd = ["ssh", "-p", str(self.a.port), "-o", "BatchMode=yes", "-o", "Compression=no",
               "-o", "ControlMaster=no", "-o", "ControlPath=none"]
        if self.a.key:
            cmd += ["-i", self.a.key, "-o", "IdentitiesOnly=yes"]
        for opt in self.a.ssh_option:
            cmd += ["-o", opt]
        return cmd

    def target(self):
        return "%s@%s" % (self.a.user, self.a.host) if self.a.user else self.a.host

    def remote(self, sub, *extra):
        args = [self.a.remote_python, self.a.remote_helper, sub, "--manifest", self.a.remote_manifest,
                "--state", self.a.remote_state, "--archive", self.arc["name"]]
        if sub == "receive":
            args += ["--root", self.a.remote_root]
            if self.a.keep_archive:
                args.append("--keep-archive")
        return " ".join(shlex.quote(x) for x in args + list(extra))

    def run_remote(self, sub, *extra):
        # Unpacking a big .part takes as long as it takes; only the small commands get a timeout.
        timeout = None if sub == "receive" else self.a.command_timeout
        try:
            p = subprocess.run(self.ssh_base() + [self.target(), self.remote(sub, *extra)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout, check=False)
        except subprocess.TimeoutExpired:
            return 124, {}, "ssh %s timed out after %s s" % (sub, timeout)
        out = p.stdout.decode("utf-8", "replace").strip().splitlines()
        try:
            data = json.loads(out[-1]) if out else {}
        except ValueError:
            data = {}
        return p.returncode, data, p.stderr.decode("utf-8", "replace").strip()

    # --- the two ways to move bytes -----------------------------------------------------------
    def stream(self):
        """Pipe the archive into `receive` on the target. Returns (rc, result, stderr)."""
        self.methods.append("stream")
        proc = subprocess.Popen(self.ssh_base() + [self.target(), self.remote("receive")],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        outs = {"out": b"", "err": b""}

        def collect(stream, key):
            outs[key] = stream.read()

        readers = [threading.Thread(target=collect, args=(proc.stdout, "out")),
                   threading.Thread(target=collect, args=(proc.stderr, "err"))]
        for t in readers:
            t.start()
        limit = self.a.bwlimit * 1024
        chunk = min(CHUNK, max(4096, limit // 10)) if limit else CHUNK
        t0, done, last = time.time(), 0, 0.0
        self.write_progress(state="streaming", method="stream", ssh_pid=proc.pid, bytes=0)
        try:
            with open(self.local, "rb") as f:
                while True:
                    data = f.read(chunk)
                    if not data:
                        break
                    proc.stdin.write(data)
                    done += len(data)
                    self.sent += len(data)
                    if limit:
                        ahead = done / float(limit) - (time.time() - t0)
                        if ahead > 0:
                            time.sleep(ahead)
                    now = time.time()
                    if now - last >= 0.5:
                        last = now
                        rate = done / max(now - t0, 1e-6)
                        self.write_progress(bytes=done, rate=rate, eta=(self.size - done) / rate if rate else None)
            proc.stdin.close()
        except (BrokenPipeError, OSError):
            pass
        self.write_progress(state="unpacking", bytes=done)
        rc = proc.wait()
        for t in readers:
            t.join()
        return rc, last_json(outs["out"]), outs["err"].decode("utf-8", "replace").strip()

    def rsync_append(self, part_size):
        """Send the missing tail of the .part with rsync --append-verify. Returns (rc, stderr)."""
        self.methods.append("rsync-append")
        dest = "%s:%s" % (self.target(), os.path.join(self.a.remote_state, "archives", self.arc["file"] + ".part"))
        cmd = ["rsync", "--append-verify", "--stats", "--info=progress2", "--no-inc-recursive",
               "-e", " ".join(shlex.quote(x) for x in self.ssh_base())]
        if self.a.bwlimit:
            cmd.append("--bwlimit=%d" % self.a.bwlimit)
        cmd += [self.local, dest]
        self.write_progress(state="resuming", method="rsync-append", bytes=part_size)
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.write_progress(ssh_pid=proc.pid)
        err = {"b": b""}
        te = threading.Thread(target=lambda: err.__setitem__("b", proc.stderr.read()))
        te.start()
        buf, text, t0, last = b"", [], time.time(), 0.0
        prog = re.compile(r"^\s*([\d,]+)\s+(\d+)%\s+(\S+)")
        while True:
            data = proc.stdout.read1(65536) if hasattr(proc.stdout, "read1") else proc.stdout.read(65536)
            if not data:
                break
            buf += data
            parts = re.split(rb"[\r\n]", buf)
            buf = parts.pop()
            for line in parts:
                s = line.decode("utf-8", "replace")
                text.append(s)
                m = prog.match(s)
                now = time.time()
                if m and now - last >= 0.5:
                    last = now
                    moved = int(m.group(1).replace(",", ""))
                    have = min(self.size, max(part_size, moved))
                    rate = max(have - part_size, 0) / max(now - t0, 1e-6)
                    self.write_progress(bytes=have, rate=rate,
                                        eta=(self.size - have) / rate if rate else None)
        text.append(buf.decode("utf-8", "replace"))
        rc = proc.wait()
        te.join()
        m = re.search(r"Total bytes sent:\s*([\d,]+)", "\n".join(text))
        if m:
            self.sent += int(m.group(1).replace(",", ""))
        return rc, err["b"].decode("utf-8", "replace").strip()

    def local_matches_manifest(self):
        got = sha256_file(self.local)
        return got == self.arc["sha256"], got

    # --- the attempt loop ---------------------------------------------------------------------
    def run(self):
        last_error = ""
        for attempt in range(1, self.a.attempts + 1):
            self.write_progress(attempt=attempt, state="probing")
            rc, probe, err = self.run_remote("probe")
            if rc != 0:
                last_error = "probe over ssh failed (rc %d): %s" % (rc, err or "no output")
                self.pause(attempt)
                continue
            part = int(probe.get("part_size", 0))
            if part == 0:
                rc, res, err = self.stream()
            else:
                rrc, rerr = self.rsync_append(part)
                if rrc != 0:
                    last_error = "rsync --append-verify of the .part failed (rc %d): %s" % (rrc, tail(rerr))
                    self.pause(attempt)
                    continue
                self.write_progress(state="unpacking", bytes=self.size)
                rc, res, err = self.run_remote("receive", "--from-part")
            if rc == 0 and res.get("ok"):
                return self.finish(True, "verified and in place")
            msg = res.get("msg") or tail(err) or ("the ssh connection was lost" if rc == 255 else "no output")
            if rc == 4:
                good, local_sha = self.local_matches_manifest()
                if not good:
                    self.run_remote("discard")
                    return self.finish(False, (
                        "%s on the controller is damaged: its sha256 is %s but the manifest recorded %s (%s). "
                        "Nothing from it was put in place. Delete %s and re-run: the pre-flight packs it again."
                        % (self.arc["file"], local_sha, self.arc["sha256"], msg, self.local)), fatal=True)
                self.run_remote("discard")
                last_error = "the copy on the target was corrupt (%s); sending it again" % msg
            else:
                last_error = "transfer interrupted (rc %d): %s" % (rc, msg)
            self.pause(attempt)
        rc, probe, _stderr = self.run_remote("probe")
        kept = int(probe.get("part_size", 0)) if rc == 0 else 0
        return self.finish(False, "%s after %d attempt(s). %s of %s is kept in %s.part on the target; re-run the "
                           "role to resume (only the missing bytes are sent)." % (
                               last_error, self.a.attempts, human(kept), human(self.size),
                               os.path.join(self.a.remote_state, "archives", self.arc["file"])))

    def pause(self, attempt):
        if attempt < self.a.attempts:
            time.sleep(min(2 ** attempt, 30))

    def finish(self, ok, msg, fatal=False):
        secs = time.time() - self.started
        self.write_progress(state="done" if ok else "failed", bytes=self.size if ok else self.progress["bytes"],
                            message=msg)
        result = {"archive": self.arc["name"], "file": self.arc["file"], "ok": ok, "fatal": fatal, "msg": msg,
                  "size": self.size, "sent": self.sent, "methods": self.methods,
                  "attempts": self.progress["attempt"], "seconds": round(secs, 2)}
        print(json.dumps(result))
        return 0 if ok else 1


def last_json(raw):
    for line in reversed(raw.decode("utf-8", "replace").strip().splitlines()):
        try:
            return json.loads(line)
        except ValueError:
            continue
    return {}


def tail(text, n=400):
    text = (text or "").strip()
    return text[-n:]


def acquire_slot(slot_dir, slots, job):
    """Hold one of `slots` lock files: at most that many transfers run at once."""
    os.makedirs(slot_dir, mode=0o700, exist_ok=True)
    while True:
        for i in range(slots):
            fd = os.open(os.path.join(slot_dir, "slot%d.lock" % i), os.O_CREAT | os.O_RDWR, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return fd
            except OSError:
                os.close(fd)
        job.write_progress(state="queued")
        time.sleep(1)


def hold_archive(lock_path):
    """One upload per archive: while an earlier transfer of it still runs (say the playbook was interrupted and
    run again), wait for it instead of racing it with a second stream; its progress file stays its own meanwhile.
    Returns (whether another transfer was waited for, the lock's fd, held until this process ends)."""
    os.makedirs(os.path.dirname(os.path.abspath(lock_path)), mode=0o700, exist_ok=True)
    fd = os.open(lock_path, os.O_CREAT | os.O_RDWR, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return False, fd
    except OSError:
        fcntl.flock(fd, fcntl.LOCK_EX)
        return True, fd


def previous_upload_succeeded(progress_path):
    try:
        with open(progress_path, encoding="utf-8") as f:
            return json.load(f).get("state") == "done"
    except (OSError, ValueError):
        return False


def report_adopted(a):
    with open(a.progress, encoding="utf-8") as f:
        progress = json.load(f)
    print(json.dumps({"archive": progress.get("archive", a.archive), "file": progress.get("file"), "ok": True,
                      "fatal": False, "adopted": True, "size": progress.get("total", 0), "sent": 0, "methods": [],
                      "attempts": 0, "seconds": 0,
                      "msg": "the upload already running for it finished: %s" % progress.get("message", "done")}))
    return 0


def main(argv=None):
    ap = argparse.ArgumentParser(prog="data_sync_transfer.py")
    ap.add_argument("--manifest", required=True)
    ap.add_argument("--archive", required=True)
    ap.add_argument("--progress", required=True)
    ap.add_argument("--host", required=True)
    ap.add_argument("--port", type=int, default=22)
    ap.add_argument("--user", default="")
    ap.add_argument("--key", default="")
    ap.add_argument("--ssh-option", action="append", default=[])
    ap.add_argument("--remote-python", default="/usr/bin/python3")
    ap.add_argument("--remote-helper", required=True)
    ap.add_argument("--remote-manifest", required=True)
    ap.add_argument("--remote-root", required=True)
    ap.add_argument("--remote-state", required=True)
    ap.add_argument("--attempts", type=int, default=3)
    ap.add_argument("--bwlimit", type=int, default=0, help="KiB/s, 0 = unlimited")
    ap.add_argument("--slots", type=int, default=3)
    ap.add_argument("--slot-dir", required=True)
    ap.add_argument("--keep-archive", action="store_true")
    ap.add_argument("--command-timeout", type=int, default=600)
    a = ap.parse_args(argv)
    adopted, archive_lock = hold_archive(a.progress + ".lock")
    try:
        if adopted and previous_upload_succeeded(a.progress):
            return report_adopted(a)
        job = Job(a)
        fd = acquire_slot(a.slot_dir, max(1, a.slots), job)
        try:
            return job.run()
        finally:
            os.close(fd)
    finally:
        os.close(archive_lock)


if __name__ == "__main__":
    sys.exit(main())
