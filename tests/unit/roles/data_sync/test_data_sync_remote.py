"""data_sync_remote.py, the helper on the target: plan, receive (a real tar.zst/tar.gz .part, complete or still
growing), verify, safety."""

import argparse
import json
import os
import shutil
import subprocess
import sys
import threading

import pytest

from _load import FILES, script, sha, tar_bytes

remote = script("data_sync_remote")
HELPER = os.path.join(FILES, "data_sync_remote.py")
CODECS = [pytest.param("zstd", marks=pytest.mark.skipif(not shutil.which("zstd"), reason="no zstd")), "gzip"]
MEMBERS = {"checkpoints/vfn.safetensors": b"weights" * 40000, "data/train.jsonl": b'{"x": 1}\n' * 20000}


def compress(raw, codec):
    cmd = ["zstd", "-q", "-3", "-c"] if codec == "zstd" else ["gzip", "-6", "-c"]
    return subprocess.run(cmd, input=raw, stdout=subprocess.PIPE, check=True).stdout


class Target:
    """A manifest, its archive bytes and the target's directories, as data_sync_pack would describe them."""

    def __init__(self, tmp_path, codec="gzip", members=None, name="VoltStaging"):
        members = MEMBERS if members is None else members
        self.members = members
        self.data = compress(tar_bytes(members), codec)
        self.file = name + (".tar.zst" if codec == "zstd" else ".tar.gz")
        self.arc = {"name": name, "file": self.file, "codec": codec, "size": len(self.data), "sha256": sha(self.data),
                    "members": [{"path": k, "size": len(v), "sha256": sha(v)} for k, v in members.items()]}
        self.root, self.state = tmp_path / "root", tmp_path / "root" / ".data_sync"
        self.manifest = tmp_path / "manifest.json"
        tmp_path.mkdir(parents=True, exist_ok=True)
        self.write_manifest()

    def write_manifest(self, *extra):
        self.manifest.write_text(json.dumps({"format": 1, "archives": [self.arc] + list(extra)}))

    @property
    def part(self):
        return self.state / "archives" / (self.file + ".part")

    @property
    def marker(self):
        return self.state / "verified" / (self.arc["name"] + ".verified")

    def argv(self, *flags):
        return [sys.executable, HELPER, "receive", "--manifest", str(self.manifest), "--root", str(self.root),
                "--state", str(self.state), "--archive", self.arc["name"], "--from-part"] + list(flags)

    def receive(self, data, *flags):
        """DATA as the whole .part (the raw writer has ended), then `receive --from-part FLAGS`."""
        self.part.parent.mkdir(parents=True, exist_ok=True)
        self.part.write_bytes(data)
        p = subprocess.run(self.argv(*flags), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=120, check=False)
        return p.returncode, json.loads(p.stdout.decode().strip().splitlines()[-1])

    def placed(self):
        """Files under the root outside the helper's state directory."""
        found = {}
        for base, dirs, names in os.walk(self.root):
            dirs[:] = [d for d in dirs if d != ".data_sync"]
            for n in names:
                path = os.path.join(base, n)
                with open(path, "rb") as f:
                    found[os.path.relpath(path, self.root)] = f.read()
        return found


@pytest.mark.parametrize("codec", CODECS)
def test_receive_unpacks_a_stream_verifies_each_file_and_puts_it_in_place(tmp_path, codec):
    t = Target(tmp_path, codec)
    rc, res = t.receive(t.data)
    assert rc == 0 and res["ok"] and res["members"] == 2 and res["sha256"] == sha(t.data)
    assert t.placed() == MEMBERS
    assert t.marker.read_text().strip() == sha(t.data)
    assert not t.part.exists(), "the .part is removed once the files are in place"
    assert not (t.state / "extract" / "VoltStaging").exists()


def test_keep_archive_keeps_the_received_bytes(tmp_path):
    t = Target(tmp_path)
    rc, _res = t.receive(t.data, "--keep-archive")
    assert rc == 0 and t.part.read_bytes() == t.data


def follow(t, pieces, close_stdin):
    """`receive --follow` while a thread appends PIECES to the .part, one at a time once the helper has read all
    before it; stdin (the controller's pipe) is closed after the last piece only if CLOSE_STDIN, else once the
    helper has ended. Returns (rc, result)."""
    t.part.parent.mkdir(parents=True, exist_ok=True)
    helper = subprocess.Popen(t.argv("--follow"), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE)

    def writer():
        written = 0
        for piece in pieces:
            with open(t.part, "ab") as f:
                f.write(piece)
            written += len(piece)
            # The helper reads what is there before the next piece comes: it must wait at the .part's end.
            while helper.poll() is None and read_by(helper) < written:
                helper_done.wait(0.01)
        if close_stdin:
            helper.stdin.close()

    helper_done = threading.Event()
    th = threading.Thread(target=writer)
    th.start()
    out = helper.stdout.read()
    rc = helper.wait(timeout=120)
    helper_done.set()
    th.join()
    if not close_stdin:
        helper.stdin.close()
    helper.stderr.close()
    return rc, json.loads(out.decode().strip().splitlines()[-1])


def read_by(proc):
    """Bytes PROC has read from the .part (its open file's offset, from /proc)."""
    fds = "/proc/%d/fd" % proc.pid
    try:
        for fd in os.listdir(fds):
            if os.readlink(os.path.join(fds, fd)).endswith(".part"):
                with open("/proc/%d/fdinfo/%s" % (proc.pid, fd), encoding="ascii") as f:
                    return int(f.readline().split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


def pieces_of(data, n=5):
    step = len(data) // n + 1
    return [data[i:i + step] for i in range(0, len(data), step)]


@pytest.mark.parametrize("codec", CODECS)
def test_follow_unpacks_the_part_as_it_grows_and_ends_once_it_has_the_manifest_size(tmp_path, codec):
    t = Target(tmp_path, codec)
    # stdin stays open until the helper has ended: having the manifest's size is enough to finish.
    rc, res = follow(t, pieces_of(t.data), close_stdin=False)
    assert rc == 0 and res["ok"] and res["received"] == len(t.data)
    assert t.placed() == MEMBERS and t.marker.read_text().strip() == sha(t.data)
    assert not t.part.exists()


def test_follow_with_the_writer_gone_and_the_part_short_is_truncated_and_places_nothing(tmp_path):
    t = Target(tmp_path)
    (t.root / "data").mkdir(parents=True)
    (t.root / "data" / "train.jsonl").write_bytes(b"the user's older copy")
    cut = len(t.data) // 2
    rc, res = follow(t, pieces_of(t.data[:cut], 3), close_stdin=True)
    assert rc == 3 and not res["ok"] and res["received"] == cut
    assert "the .part ended after" in res["msg"]
    assert t.placed() == {"data/train.jsonl": b"the user's older copy"}
    assert not t.marker.exists() and not (t.state / "extract" / "VoltStaging").exists()
    assert t.part.read_bytes() == t.data[:cut], "the .part is kept for the next attempt to append to"
    # The next attempt appends the rest; the helper then reads the .part from its first byte.
    rc, res = follow(t, [t.data[cut:]], close_stdin=True)
    assert rc == 0 and res["ok"]
    assert t.placed() == MEMBERS and t.marker.read_text().strip() == sha(t.data)


def test_follow_with_no_part_and_stdin_closed_is_truncated(tmp_path):
    t = Target(tmp_path)
    rc, res = follow(t, [], close_stdin=True)
    assert rc == 3 and res["received"] == 0 and t.placed() == {}


def test_a_short_part_without_follow_is_corrupt(tmp_path):
    t = Target(tmp_path)
    rc, res = t.receive(t.data[:100])
    assert rc == 4 and "archive differs from the manifest: 100 bytes" in res["msg"]


def test_an_archive_that_differs_from_the_manifest_is_corrupt_and_nothing_is_placed(tmp_path):
    t = Target(tmp_path)
    damaged = bytearray(t.data)
    damaged[len(damaged) // 2] ^= 0xFF
    rc, res = t.receive(bytes(damaged))
    assert rc == 4 and "archive differs from the manifest" in res["msg"]
    assert t.placed() == {} and not t.marker.exists()


def test_a_member_whose_sha256_differs_from_the_manifest_is_caught_per_file(tmp_path):
    t = Target(tmp_path)
    t.arc["members"][1]["sha256"] = sha(b"something else")
    t.write_manifest()
    rc, res = t.receive(t.data)
    assert rc == 4 and "extracted files differ from the manifest" in res["msg"] and "data/train.jsonl" in res["msg"]
    assert t.placed() == {} and not t.marker.exists()


def test_a_member_the_manifest_lists_but_the_archive_lacks_is_corrupt(tmp_path):
    t = Target(tmp_path)
    t.arc["members"].append({"path": "data/extra.jsonl", "size": 3, "sha256": sha(b"abc")})
    t.write_manifest()
    rc, res = t.receive(t.data)
    assert rc == 4 and "data/extra.jsonl missing from the archive" in res["msg"]
    assert t.placed() == {}


@pytest.mark.parametrize("evil", ["../escaped.jsonl", "/tmp/voltx-absolute.jsonl", "data/../../escaped.jsonl"])
def test_a_member_naming_a_path_outside_the_root_is_refused(tmp_path, evil):
    t = Target(tmp_path, members={evil: b"payload"})
    rc, res = t.receive(t.data)
    assert rc == 4 and "unexpected tar member" in res["msg"]
    assert not (tmp_path / "escaped.jsonl").exists() and not (t.root.parent / "escaped.jsonl").exists()
    assert t.placed() == {}


@pytest.mark.parametrize("name, expected", [
    ("data/train.jsonl", "data/train.jsonl"), ("./data/../data/x", "data/x"), ("a//b", "a/b"),
    ("../x", None), ("..", None), ("/etc/passwd", None), ("a/../../x", None), ("", None), (".", None), ("a/..", None),
])
def test_safe_member_path(name, expected):
    assert remote.safe_member_path(name) == expected


def plan(t, margin=0):
    return argparse.Namespace(manifest=str(t.manifest), root=str(t.root), state=str(t.state), margin=margin)


def run_json(capsys, fn, a):
    assert fn(a) == 0
    return json.loads(capsys.readouterr().out)


def three_archives(tmp_path):
    """VoltStaging verified in place, stack_python with 100 bytes of .part, stack_multilang not started."""
    t = Target(tmp_path)
    assert t.receive(t.data)[0] == 0
    py = Target(tmp_path / "py", members={"data/python_sample.jsonl": b"p" * 5000}, name="stack_python").arc
    ml = Target(tmp_path / "ml", members={"data/multilang/rust/rust_sample.jsonl": b"r" * 7000},
                name="stack_multilang").arc
    t.write_manifest(py, ml)
    (t.state / "archives" / (py["file"] + ".part")).write_bytes(b"x" * 100)
    return t, py, ml


def test_plan_reports_each_archive_and_the_disk_it_still_needs(tmp_path, capsys):
    t, py, ml = three_archives(tmp_path)
    out = run_json(capsys, remote.cmd_plan, plan(t, margin=1000))
    assert out["archives"]["VoltStaging"] == {"status": "verified", "part_size": 0, "need": 0}
    assert out["archives"]["stack_python"] == {"status": "partial", "part_size": 100,
                                               "need": py["size"] - 100 + 5000}
    assert out["archives"]["stack_multilang"] == {"status": "missing", "part_size": 0, "need": ml["size"] + 7000}
    assert out["todo"] == ["stack_multilang", "stack_python"]
    assert (out["need_archives"], out["need_extracted"]) == (py["size"] - 100 + ml["size"], 12000)
    (fs,) = out["filesystems"]  # everything is on one filesystem here: the margin is added once
    assert fs["need"] == py["size"] - 100 + ml["size"] + 12000 + 1000
    assert out["ok"] and fs["ok"] and out["message"] == ""


def test_plan_refuses_with_the_numbers_when_the_disk_is_too_small(tmp_path, capsys):
    t, _py, _ml = three_archives(tmp_path)
    free = os.statvfs(str(t.root)).f_bavail * os.statvfs(str(t.root)).f_frsize
    out = run_json(capsys, remote.cmd_plan, plan(t, margin=free + 10 ** 12))
    assert not out["ok"] and not out["filesystems"][0]["ok"]
    assert out["message"].startswith("Not enough disk space on the target for the data: needs ")
    assert "Nothing was sent" in out["message"] and "data_sync_disk_margin_mb" in out["message"]


def test_plan_does_not_count_a_verified_archive_whose_file_was_changed(tmp_path, capsys):
    t = Target(tmp_path)
    assert t.receive(t.data)[0] == 0
    (t.root / "data" / "train.jsonl").write_bytes(b"shorter")
    out = run_json(capsys, remote.cmd_plan, plan(t))
    assert out["archives"]["VoltStaging"]["status"] == "missing" and out["todo"] == ["VoltStaging"]


def test_plan_ignores_a_part_longer_than_the_archive(tmp_path, capsys):
    t = Target(tmp_path)
    t.part.parent.mkdir(parents=True)
    t.part.write_bytes(b"x" * (t.arc["size"] + 1))
    out = run_json(capsys, remote.cmd_plan, plan(t))
    assert out["archives"]["VoltStaging"] == {"status": "missing", "part_size": 0,
                                              "need": t.arc["size"] + sum(len(v) for v in MEMBERS.values())}


def test_discard_removes_the_part(tmp_path, capsys):
    t = Target(tmp_path)
    t.part.parent.mkdir(parents=True)
    t.part.write_bytes(b"x" * 10)
    run_json(capsys, remote.cmd_discard, argparse.Namespace(manifest=str(t.manifest), state=str(t.state),
                                                            archive="VoltStaging"))
    assert not t.part.exists()


def verify(t, capsys, checksums=False):
    return run_json(capsys, remote.cmd_verify, argparse.Namespace(manifest=str(t.manifest), root=str(t.root),
                                                                  state=str(t.state), checksums=checksums))


def test_verify_passes_after_a_receive_and_names_every_problem_after(tmp_path, capsys):
    t = Target(tmp_path)
    assert t.receive(t.data)[0] == 0
    out = verify(t, capsys, checksums=True)
    assert out["ok"] and out["problems"] == [] and out["total"] == sum(len(v) for v in MEMBERS.values())
    assert all(f["sha256_ok"] for f in out["files"])
    # Same size, other bytes: only --checksums can tell.
    train = t.root / "data" / "train.jsonl"
    train.write_bytes(b"Y" * len(MEMBERS["data/train.jsonl"]))
    assert verify(t, capsys)["ok"]
    out = verify(t, capsys, checksums=True)
    assert not out["ok"] and out["problems"] == ["%s: sha256 %s, expected %s" % (
        train, sha(train.read_bytes()), sha(MEMBERS["data/train.jsonl"]))]
    train.write_bytes(b"short")
    assert verify(t, capsys)["problems"] == ["%s is 5 bytes, expected %d" % (train, len(MEMBERS["data/train.jsonl"]))]
    train.unlink()
    t.marker.unlink()
    problems = verify(t, capsys)["problems"]
    assert "%s is missing" % train in problems
    assert any(p.startswith("VoltStaging: not verified on this host") for p in problems)


def reaped(proc):
    """A thread that waits for PROC, so a killed child leaves no zombie behind in /proc."""
    th = threading.Thread(target=proc.wait, daemon=True)
    th.start()
    return th


def test_stop_stale_ends_an_earlier_receiver_of_the_same_archive(tmp_path):
    t = Target(tmp_path)
    paths = remote.Paths(str(t.state), t.arc)
    os.makedirs(paths.archives)
    stale = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)", "data_sync_remote.py", "receive",
                              "--archive", "VoltStaging"])
    waiter = reaped(stale)
    try:
        remote.write_atomic(paths.pid, str(stale.pid))
        remote.stop_stale(paths, t.arc)
        waiter.join(10)
        assert stale.poll() is not None, "the stale receiver still runs"
        assert not os.path.exists(paths.pid)
    finally:
        if stale.poll() is None:
            stale.kill()


def test_stop_stale_leaves_an_unrelated_process_with_a_reused_pid_alone(tmp_path):
    t = Target(tmp_path)
    paths = remote.Paths(str(t.state), t.arc)
    os.makedirs(paths.archives)
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)", "something", "VoltStaging"])
    try:
        remote.write_atomic(paths.pid, str(other.pid))
        remote.stop_stale(paths, t.arc)
        assert other.poll() is None, "a process that is not a receiver of this archive was killed"
        assert not os.path.exists(paths.pid)
    finally:
        other.kill()
        other.wait()
