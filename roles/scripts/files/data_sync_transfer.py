"""voltx.vastai.data_sync — send one archive to the target and have it unpacked once the target's tools are in.

Runs on the controller (started by Ansible with async), from the moment the host answers ssh: the
host needs only POSIX sh and coreutils to receive bytes. Per attempt:
  1. Raw probe (sh over ssh): stop a stale raw writer of this archive, drop an over-long .part, and
     read the .part's size, the free space where the archives go, and the archive's verified marker.
     A marker that names the manifest's sha256 ends the job ("skipped"); too little disk ends it
     before the first byte.
  2. Raw writer: `ssh host "... exec cat >> <file>.part"` fed from the local archive at the .part's
     size (method "stream" from 0, "append" when resuming).
  3. Follower: once the --go-ahead file exists on the controller (python3 and zstd are on the host),
     `ssh host python3 data_sync_remote.py receive --from-part --follow` reads the .part from its first
     byte as it grows, unpacks, verifies and moves the files into place. Its stdin is a pipe held open
     while the writer runs: its end tells the helper that no more bytes will come. A go-ahead file
     that starts with `stop` stops the job instead, keeping the .part.
  4. The follower's exit 3 (the .part ended short: the writer's link died) -> the next attempt appends
     from the .part's size. Exit 4 (corrupt): the local archive is hashed; if it no longer matches the
     manifest the job stops (the damage is local), otherwise the .part is dropped and sent again.
Progress (bytes, rate, ETA, attempt, the writer's ssh pid) goes to --progress as JSON; the final
result is one JSON line on stdout. With --progress-dir and several --archive, one process per archive runs as above
(progress in DIR/<archive>.json) and the results come as one JSON list on the last line: the play starts all the
uploads with one async task and follows one job. SSH runs with Compression=no and its own connection (no
ControlMaster): the archives are already compressed, and each stream needs its own TCP window.
"""

import argparse
import fcntl
import json
import os
import shlex
import signal
import subprocess
import sys
import threading
import time

# One copy of the shared helpers: data_sync_remote.py lies next to this file (voltx.vastai.scripts).
from data_sync_remote import human, sha256_file  # pylint: disable=import-error

CHUNK = 1 << 20
GO_AHEAD_POLL = 0.1
PROBE_TAG = "DATA_SYNC_PROBE"

# The raw probe, POSIX sh and coreutils only. $1 archives dir, $2 .part, $3 marker, $4 the archive's size.
# A writer is `cat` exec'd by the sh that wrote its pid: any other process behind a reused pid is left alone.
PROBE_SH = r"""
w="$2.writer"
if [ -f "$w" ]; then
  pid=$(cat "$w" 2>/dev/null)
  case "$pid" in
    ''|*[!0-9]*) ;;
    *) if [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = cat ]; then
         kill "$pid" 2>/dev/null
         i=0
         while [ -d "/proc/$pid" ] && [ "$i" -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
       fi ;;
  esac
  rm -f "$w"
fi
part=0
[ -f "$2" ] && part=$(stat -c %%s "$2")
if [ "$part" -gt "$4" ]; then rm -f "$2"; part=0; fi
d=$1
while [ ! -e "$d" ]; do d=$(dirname "$d"); done
marker=$(head -c 200 "$3" 2>/dev/null | head -n 1 | tr -cd '0-9a-zA-Z')
set -f
set -- $(df -Pk "$d" | tail -n 1)
free=$4
echo "%s part=$part free_kb=$free marker=$marker"
""" % PROBE_TAG


def rq(path):
    """PATH quoted for the remote shell. A leading ~/ (the home the transfer is launched before Ansible knows of)
    stays the remote's "$HOME"."""
    if path == "~":
        return '"$HOME"'
    if path.startswith("~/"):
        return '"$HOME"/' + shlex.quote(path[2:])
    return shlex.quote(path)


def sh_c(script, *args):
    """A remote command line running SCRIPT with sh, ARGS as its positional parameters (expanded by rq first)."""
    return "sh -c %s sh %s" % (shlex.quote(script), " ".join(rq(x) for x in args))


class Stopped(Exception):
    """The go-ahead file said stop."""


class Job:
    def __init__(self, a):
        self.a = a
        with open(a.manifest, encoding="utf-8") as f:
            manifest = json.load(f)
        self.arc = next(x for x in manifest["archives"] if x["name"] == a.archive)
        self.local = os.path.join(os.path.dirname(os.path.abspath(a.manifest)), self.arc["file"])
        self.size = self.arc["size"]
        self.unpacked = sum(m["size"] for m in self.arc["members"])
        # What every archive of the manifest takes on the host, sent and unpacked.
        self.everything = sum(x["size"] + sum(m["size"] for m in x["members"]) for x in manifest["archives"])
        self.archives_dir = os.path.join(a.remote_state, "archives")
        self.part = os.path.join(self.archives_dir, self.arc["file"] + ".part")
        self.marker = os.path.join(a.remote_state, "verified", self.arc["name"] + ".verified")
        self.sent = 0
        self.methods = []
        self.started = time.time()
        self.lock = threading.Lock()
        self.progress = {"archive": self.arc["name"], "file": self.arc["file"], "state": "queued",
                         "bytes": 0, "total": self.size, "rate": 0.0, "eta": None, "attempt": 0,
                         "method": None, "ssh_pid": None, "sent": 0, "started": self.started}
        self.write_progress()

    # --- plumbing ---------------------------------------------------------------------------
    def write_progress(self, **kw):
        with self.lock:  # the writer's thread reports bytes while the main thread reports states
            self.progress.update(kw)
            self.progress["updated"] = time.time()
            self.progress["sent"] = self.sent
            tmp = self.a.progress + ".tmp"
            with open(tmp, "w", encoding="utf-8") as f:
                json.dump(self.progress, f)
            os.replace(tmp, self.a.progress)

    def ssh_base(self):
        """--ssh (voltx.vastai.ssh_argv: a connection of its own, with Ansible's key and pinned host key), plus what
        a bulk stream needs; put first, as ssh keeps the first value of an option."""
        return self.a.ssh[:1] + ["-o", "BatchMode=yes", "-o", "Compression=no"] + self.a.ssh[1:]

    def ssh(self, command):
        return self.ssh_base() + [command]

    def remote(self, sub, *extra):
        """The helper's command line (python3 is on the host by the time the follower or discard runs)."""
        args = [rq(self.a.remote_python), rq(self.a.remote_helper), sub, "--manifest", rq(self.a.remote_manifest),
                "--state", rq(self.a.remote_state), "--archive", shlex.quote(self.arc["name"])]
        if sub == "receive":
            args += ["--root", rq(self.a.remote_root)]
            if self.a.keep_archive:
                args.append("--keep-archive")
        return " ".join(args + [shlex.quote(x) for x in extra])

    def run_ssh(self, command, what):
        try:
            p = subprocess.run(self.ssh(command), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, timeout=self.a.command_timeout, check=False)
        except subprocess.TimeoutExpired:
            return 124, "", "ssh %s timed out after %s s" % (what, self.a.command_timeout)
        return p.returncode, p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace").strip()

    def run_remote(self, sub, *extra):
        rc, out, err = self.run_ssh(self.remote(sub, *extra), sub)
        return rc, last_json(out.encode()), err

    def raw_probe(self):
        """(rc, {"part": bytes, "free": bytes, "marker": text}, stderr) from the raw probe."""
        rc, out, err = self.run_ssh(sh_c(PROBE_SH, self.archives_dir, self.part, self.marker, str(self.size)),
                                    "probe")
        for line in reversed(out.splitlines()):
            fields = line.split()
            if fields and fields[0] == PROBE_TAG:
                kv = dict(f.split("=", 1) for f in fields[1:] if "=" in f)
                try:
                    return rc, {"part": int(kv["part"]), "free": int(kv["free_kb"]) * 1024,
                                "marker": kv.get("marker", "")}, err
                except (KeyError, ValueError):
                    break
        return (rc or 1), {}, err or "the probe printed no %s line: %s" % (PROBE_TAG, tail(out))

    # --- the go-ahead -------------------------------------------------------------------------
    def go_ahead(self):
        """None while the go-ahead file is absent, else the archives it names as still needed on the host (`go NAME
        ...`; the play's plan, which knows verified files from changed ones); raises Stopped with the reason for
        `stop ...`. Without --go-ahead: go at once, naming none."""
        if not self.a.go_ahead:
            return set()
        try:
            with open(self.a.go_ahead, encoding="utf-8", errors="replace") as f:
                text = f.read()
        except FileNotFoundError:
            # A play that stopped before the host had its tools (apt failed, say) never writes it: the job ends
            # instead of waiting out Ansible's async timeout. A re-run resumes from the .part.
            if time.time() - self.started > self.a.go_ahead_timeout:
                raise Stopped("the play gave no go-ahead within %d s (it stopped before the host had its tools); "
                              "re-run the role" % self.a.go_ahead_timeout) from None
            return None
        if text.startswith("stop"):
            raise Stopped(text[len("stop"):].strip(" :\n\t") or "the play stopped the upload")
        return set(text.split()[1:])

    def needed_after_all(self):
        """For an archive whose marker says verified: wait for the go-ahead and say whether the play's plan still
        names it (one of its files was changed or removed on the host since)."""
        named = self.go_ahead()
        if named is None:
            self.write_progress(state="waiting")
        while named is None:
            time.sleep(GO_AHEAD_POLL)
            named = self.go_ahead()
        return self.arc["name"] in named

    # --- one attempt ----------------------------------------------------------------------------
    def attempt(self, offset):
        """Write the archive from OFFSET into the .part and follow it with the helper once the go-ahead is there.
        Returns (rc, result, stderr) of the follower, or of the writer when the follower never ran."""
        method = "stream" if offset == 0 else "append"
        self.methods.append(method)
        writer = Writer(self, offset)
        follower = None
        try:
            writer.start()
            self.write_progress(state="streaming", method=method, ssh_pid=writer.proc.pid, bytes=offset,
                                first_byte=self.progress.get("first_byte") or time.time())
            while self.go_ahead() is None:
                if writer.ended.is_set():
                    if not writer.ok():
                        return writer.result()
                    if self.progress["state"] != "waiting":
                        self.write_progress(state="waiting", bytes=self.size, rate=0.0, eta=None)
                    time.sleep(GO_AHEAD_POLL)  # ended.wait() no longer waits
                else:
                    writer.ended.wait(GO_AHEAD_POLL)
            follower = Follower(self)
            # Its stdin stays open while the writer runs: the helper's one sign that no more bytes will come.
            writer.ended.wait()
            follower.close_stdin()
            if follower.running() and writer.ok():
                self.write_progress(state="unpacking", bytes=self.size, rate=0.0, eta=None)
            rc, res, err = follower.wait()
            if rc not in (0, 4) and not writer.ok():
                return writer.result()  # the follower only saw the .part end short: the writer says why
            return rc, res, err
        finally:
            writer.stop()
            if follower is not None:
                follower.stop()

    def local_matches_manifest(self):
        got = sha256_file(self.local)
        return got == self.arc["sha256"], got

    # --- the attempt loop ---------------------------------------------------------------------
    def run(self):
        last_error, gated = "", False
        for attempt in range(1, self.a.attempts + 1):
            self.write_progress(attempt=attempt, state="probing")
            rc, probe, err = self.raw_probe()
            if rc != 0:
                last_error = "probe over ssh failed (rc %d): %s" % (rc, tail(err) or "no output")
                self.pause(attempt)
                continue
            part = probe["part"]
            verified = probe["marker"] == self.arc["sha256"]
            need = self.size - part + self.unpacked + self.a.margin
            try:
                # Before the play's plan (which knows what is on the host) has spoken, bytes go out only when the
                # whole manifest fits; otherwise, or when the marker says verified, the job waits for the plan.
                # A cheap worst case on one filesystem: the exact need, per filesystem and for what is still to
                # come, is data_sync_remote.py's `plan`.
                if self.a.go_ahead and not gated and (
                        verified or probe["free"] < self.everything - part + self.a.margin):
                    if not self.needed_after_all() and verified:
                        return self.finish(True, "already verified on the host", state="skipped")
                    gated = True  # the plan compared what is still to come with the free space
                elif verified and not self.a.go_ahead:
                    return self.finish(True, "already verified on the host", state="skipped")
            except Stopped as stop:
                return self.finish(False, "%s. Nothing of %s was sent." % (stop, self.arc["name"]), fatal=True)
            if not gated:
                if probe["free"] < need:
                    return self.finish(False, (
                        "Not enough disk space on the target for %s: it needs %s (archive %s + extracted %s + margin "
                        "%s), %s is free under %s. Nothing was sent." % (
                            self.arc["name"], human(need), human(self.size - part), human(self.unpacked),
                            human(self.a.margin), human(probe["free"]), self.archives_dir)), fatal=True)
                gated = True
            try:
                rc, res, err = self.attempt(part)
            except Stopped as stop:
                return self.finish(False, "%s. The upload of %s stopped before it was unpacked; what reached the "
                                   "host is kept in %s." % (stop, self.arc["name"], self.part), fatal=True)
            if rc == 0 and res.get("ok"):
                return self.finish(True, "verified and in place")
            msg = res.get("msg") or tail(err) or ("the ssh connection was lost" if rc == 255 else "no output")
            if rc == 4:
                good, local_sha = self.local_matches_manifest()
                self.run_remote("discard")
                if not good:
                    return self.finish(False, (
                        "%s on the controller is damaged: its sha256 is %s but the manifest recorded %s (%s). "
                        "Nothing from it was put in place. Delete %s and re-run: the pre-flight packs it again."
                        % (self.arc["file"], local_sha, self.arc["sha256"], msg, self.local)), fatal=True)
                last_error = "the copy on the target was corrupt (%s); sending it again" % msg
            else:
                last_error = "transfer interrupted (rc %d): %s" % (rc, msg)
            self.pause(attempt)
        rc, probe, _stderr = self.raw_probe()
        kept = probe.get("part", 0) if rc == 0 else 0
        return self.finish(False, "%s after %d attempt(s). %s of %s is kept in %s on the target; re-run the "
                           "role to resume (only the missing bytes are sent)." % (
                               last_error, self.a.attempts, human(kept), human(self.size), self.part))

    def pause(self, attempt):
        if attempt < self.a.attempts:
            time.sleep(min(2 ** attempt, 30))

    def finish(self, ok, msg, fatal=False, state=None):
        secs = time.time() - self.started
        self.write_progress(state=state or ("done" if ok else "failed"),
                            bytes=self.size if ok else self.progress["bytes"], message=msg)
        result = {"archive": self.arc["name"], "file": self.arc["file"], "ok": ok, "fatal": fatal, "msg": msg,
                  "size": self.size, "sent": self.sent, "methods": self.methods,
                  "attempts": self.progress["attempt"], "seconds": round(secs, 2)}
        print(json.dumps(result))
        return 0 if ok else 1


class Writer:
    """`cat >> .part` on the host over its own ssh, fed from the local archive at OFFSET (paced by --bwlimit)."""

    def __init__(self, job, offset):
        self.job, self.offset = job, offset
        self.proc, self.thread, self.rc, self.error = None, None, None, ""
        self.complete = False
        self.ended, self.cancel = threading.Event(), threading.Event()
        self.err = b""

    def start(self):
        j = self.job
        script = 'mkdir -p "$1" && echo $$ > "$2.writer" && exec cat >> "$2"'
        self.proc = subprocess.Popen(j.ssh(sh_c(script, j.archives_dir, j.part)), stdin=subprocess.PIPE,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        threading.Thread(target=self.collect_stderr, daemon=True).start()
        self.thread = threading.Thread(target=self.feed, daemon=True)
        self.thread.start()

    def collect_stderr(self):
        self.err = self.proc.stderr.read()

    def feed(self):
        j = self.job
        limit = j.a.bwlimit * 1024
        chunk = min(CHUNK, max(4096, limit // 10)) if limit else CHUNK
        t0, done, last = time.time(), 0, 0.0
        try:
            with open(j.local, "rb") as f:
                f.seek(self.offset)
                while not self.cancel.is_set():
                    data = f.read(chunk)
                    if not data:
                        self.complete = True
                        break
                    self.proc.stdin.write(data)
                    self.proc.stdin.flush()
                    done += len(data)
                    j.sent += len(data)
                    if limit:
                        ahead = done / float(limit) - (time.time() - t0)
                        if ahead > 0 and self.cancel.wait(ahead):
                            break
                    now = time.time()
                    if now - last >= 0.5:
                        last = now
                        rate = done / max(now - t0, 1e-6)
                        have = self.offset + done
                        j.write_progress(bytes=have, rate=rate, eta=(j.size - have) / rate if rate else None)
        except (BrokenPipeError, OSError) as exc:
            self.error = str(exc)
        finally:
            try:
                self.proc.stdin.close()
            except OSError:
                pass
            self.rc = self.proc.wait()
            j.write_progress(bytes=self.offset + done)
            self.ended.set()

    def ok(self):
        return self.ended.is_set() and self.complete and self.rc == 0

    def result(self):
        err = self.err.decode("utf-8", "replace").strip()
        rc = int(255 if self.rc is None else self.rc)  # called once the writer has ended: its rc is known
        if 0 < rc < 255:
            return rc, {"ok": False, "msg": tail(err) or self.error or "the writer ended early"}, err
        msg = tail(err) or "the ssh connection was lost"
        if rc < 0:
            msg += " (its ssh ended by signal %d)" % -rc
        return 255, {"ok": False, "msg": msg}, err

    def stop(self):
        self.cancel.set()
        if self.proc is not None and self.proc.poll() is None and not self.ended.is_set():
            self.proc.terminate()
        if self.thread is not None:
            self.thread.join()


class Follower:
    """The helper's `receive --from-part --follow` over its own ssh; stdin open while the writer runs."""

    def __init__(self, job):
        self.proc = subprocess.Popen(job.ssh(job.remote("receive", "--from-part", "--follow")),
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.outs = {"out": b"", "err": b""}
        self.readers = [threading.Thread(target=self.collect, args=(self.proc.stdout, "out"), daemon=True),
                        threading.Thread(target=self.collect, args=(self.proc.stderr, "err"), daemon=True)]
        for t in self.readers:
            t.start()

    def collect(self, stream, key):
        self.outs[key] = stream.read()

    def running(self):
        return self.proc.poll() is None

    def close_stdin(self):
        try:
            self.proc.stdin.close()
        except OSError:
            pass

    def wait(self):
        rc = self.proc.wait()
        for t in self.readers:
            t.join()
        return rc, last_json(self.outs["out"]), self.outs["err"].decode("utf-8", "replace").strip()

    def stop(self):
        self.close_stdin()
        if self.proc.poll() is None:
            self.proc.terminate()
        self.proc.wait()


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


# The options that take no value.
FLAGS = {"--take-back-go-ahead", "--keep-archive"}


def without_options(argv, names):
    """ARGV less the options in NAMES, in both forms (`--name value` and `--name=value`)."""
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg.split("=", 1)[0] in names:
            skip = "=" not in arg and arg not in FLAGS
        else:
            out.append(arg)
    return out


def run_each(a, argv):
    """One process per archive (each holds its archive's lock and progress file), their results as one JSON list."""
    if a.take_back_go_ahead and a.go_ahead:
        # An earlier run's word must not let these unpack before this run has put the helper and manifest there.
        try:
            os.remove(a.go_ahead)
        except FileNotFoundError:
            pass
    common = without_options(argv, {"--archive", "--progress-dir", "--take-back-go-ahead"})
    outputs, children = {}, []
    try:
        for name in a.archive:
            child = subprocess.Popen(  # pylint: disable=consider-using-with  # waited for below, killed in finally
                [sys.executable, os.path.abspath(__file__)] + common
                + ["--archive", name, "--progress", os.path.join(a.progress_dir, name + ".json")],
                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            reader = threading.Thread(target=lambda c=child, n=name: outputs.__setitem__(n, c.communicate()))
            reader.start()
            children.append((name, child, reader))
        results = []
        for name, child, reader in children:
            reader.join()
            out, err = outputs[name]
            result = last_json(out)
            if not result:
                result = {"archive": name, "ok": False, "fatal": False, "size": 0, "sent": 0, "methods": [],
                          "attempts": 0, "seconds": 0,
                          "msg": "the upload ended without a result (rc %s): %s" % (
                              child.returncode, tail(err.decode("utf-8", "replace")) or "no output")}
            results.append(result)
    finally:
        for _name, child, _reader in children:
            if child.poll() is None:
                child.terminate()  # SIGTERM: each unwinds and ends its own ssh
                child.wait()
    print(json.dumps(results))
    return 0 if all(r.get("ok") for r in results) else 1


def parse_args(argv=None):
    ap = argparse.ArgumentParser(prog="data_sync_transfer.py")
    ap.add_argument("--manifest", required=True)
    ap.add_argument("--archive", required=True, action="append",
                    help="the archive to send; several with --progress-dir")
    ap.add_argument("--progress", help="the progress file of the one archive")
    ap.add_argument("--progress-dir", help="one process per --archive, each with DIR/<archive>.json")
    ap.add_argument("--take-back-go-ahead", action="store_true",
                    help="with --progress-dir: remove an earlier run's go-ahead file before starting")
    ap.add_argument("--ssh", required=True, type=json.loads,
                    help="ssh's argv up to and including the destination, as a JSON list")
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
    ap.add_argument("--margin", type=int, default=0,
                    help="bytes the disk must keep free beyond the archive and its extracted files")
    ap.add_argument("--go-ahead", default="",
                    help="a controller-local file: unpacking starts once it exists (`go NAME...`: the archives the "
                         "host still needs); `stop <reason>` stops")
    # Longer than the bootstrap's first packages can take (its apt lock waits and retries included).
    ap.add_argument("--go-ahead-timeout", type=float, default=3600,
                    help="seconds from the start to wait for the go-ahead file")
    a = ap.parse_args(argv)
    if not a.progress_dir:
        if len(a.archive) != 1 or not a.progress:
            ap.error("one --archive with --progress, or --progress-dir")
        a.archive = a.archive[0]
    return a


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    a = parse_args(argv)
    if threading.current_thread() is threading.main_thread():
        # Ansible's async timeout and `kill` send SIGTERM: unwind, so the writer's and follower's ssh (or the
        # per-archive processes) end too.
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if a.progress_dir:
        return run_each(a, argv)
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
