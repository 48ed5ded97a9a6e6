"""data_sync_transfer.py's attempt loop: what it does after each answer from the target (ssh and rsync faked)."""

import argparse
import hashlib
import json
import shlex

import pytest

from _load import script

transfer = script("data_sync_transfer")
ARCHIVE = b"compressed archive bytes " * 400


class Target:
    """Stands in for ssh and rsync: answers probe/receive/discard from scripted lists and records every call."""

    def __init__(self, probes=(), streams=(), rsyncs=(), from_parts=()):
        self.probes, self.streams, self.rsyncs = list(probes), list(streams), list(rsyncs)
        self.from_parts = list(from_parts)
        self.calls = []

    def install(self, monkeypatch):
        target = self

        def run_remote(job, sub, *extra):
            target.calls.append((sub,) + extra)
            if sub == "probe":
                return target.probes.pop(0) if target.probes else (0, {"part_size": 0}, "")
            if sub == "receive":
                return target.from_parts.pop(0)
            return 0, {"discarded": True}, ""

        def stream(job):
            target.calls.append(("stream",))
            job.methods.append("stream")
            return target.streams.pop(0)

        def rsync_append(job, part_size):
            target.calls.append(("rsync", part_size))
            job.methods.append("rsync-append")
            return target.rsyncs.pop(0)

        monkeypatch.setattr(transfer.Job, "run_remote", run_remote)
        monkeypatch.setattr(transfer.Job, "stream", stream)
        monkeypatch.setattr(transfer.Job, "rsync_append", rsync_append)
        monkeypatch.setattr(transfer.time, "sleep", lambda _s: None)
        return self


OK = (0, {"ok": True}, "")


def run(tmp_path, capsys, local=ARCHIVE, attempts=3, extra=()):
    (tmp_path / "manifest.json").write_text(json.dumps({"archives": [{
        "name": "stack_python", "file": "stack_python.tar.zst", "size": len(ARCHIVE),
        "sha256": hashlib.sha256(ARCHIVE).hexdigest(), "members": []}]}))
    (tmp_path / "stack_python.tar.zst").write_bytes(local)
    rc = transfer.main(["--manifest", str(tmp_path / "manifest.json"), "--archive", "stack_python",
                        "--progress", str(tmp_path / "progress.json"), "--host", "10.0.0.1",
                        "--remote-helper", "/w/.data_sync/bin/data_sync_remote.py", "--remote-manifest", "/w/m.json",
                        "--remote-root", "/w", "--remote-state", "/w/.data_sync", "--slot-dir", str(tmp_path / "slots"),
                        "--attempts", str(attempts)] + list(extra))
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    progress = json.loads((tmp_path / "progress.json").read_text())
    return rc, result, progress


def test_no_part_on_the_target_streams_the_archive(tmp_path, capsys, monkeypatch):
    t = Target(streams=[OK]).install(monkeypatch)
    rc, res, progress = run(tmp_path, capsys)
    assert rc == 0 and res["ok"] and res["methods"] == ["stream"] and res["attempts"] == 1
    assert t.calls == [("probe",), ("stream",)]
    assert (progress["state"], progress["bytes"], progress["total"]) == ("done", len(ARCHIVE), len(ARCHIVE))


def test_a_part_on_the_target_is_completed_with_rsync_append_then_unpacked_from_it(tmp_path, capsys, monkeypatch):
    t = Target(probes=[(0, {"part_size": 4096}, "")], rsyncs=[(0, "")], from_parts=[OK]).install(monkeypatch)
    rc, res, _progress = run(tmp_path, capsys)
    assert rc == 0 and res["methods"] == ["rsync-append"]
    assert t.calls == [("probe",), ("rsync", 4096), ("receive", "--from-part")]


def test_a_failed_probe_is_retried_and_the_next_attempt_goes_on(tmp_path, capsys, monkeypatch):
    t = Target(probes=[(255, {}, "Connection reset by peer"), (0, {"part_size": 0}, "")],
               streams=[OK]).install(monkeypatch)
    rc, res, _progress = run(tmp_path, capsys)
    assert rc == 0 and res["attempts"] == 2
    assert t.calls == [("probe",), ("probe",), ("stream",)]


def test_probes_failing_every_time_give_up_with_the_reason_and_the_attempts(tmp_path, capsys, monkeypatch):
    Target(probes=[(255, {}, "No route to host")] * 4).install(monkeypatch)
    rc, res, progress = run(tmp_path, capsys, attempts=2)
    assert rc == 1 and not res["ok"] and not res["fatal"]
    assert res["msg"].startswith("probe over ssh failed (rc 255): No route to host after 2 attempt(s).")
    assert "re-run the role to resume" in res["msg"] and progress["state"] == "failed"


def test_an_interrupted_stream_resumes_from_the_part_it_left(tmp_path, capsys, monkeypatch):
    t = Target(probes=[(0, {"part_size": 0}, ""), (0, {"part_size": 1000}, "")],
               streams=[(3, {"ok": False, "msg": "input ended after 1000 B"}, "")],
               rsyncs=[(0, "")], from_parts=[OK]).install(monkeypatch)
    rc, res, _progress = run(tmp_path, capsys)
    assert rc == 0 and res["methods"] == ["stream", "rsync-append"]
    assert t.calls == [("probe",), ("stream",), ("probe",), ("rsync", 1000), ("receive", "--from-part")]


def test_a_failed_rsync_is_retried(tmp_path, capsys, monkeypatch):
    t = Target(probes=[(0, {"part_size": 10}, "")] * 2, rsyncs=[(12, "rsync: connection unexpectedly closed"), (0, "")],
               from_parts=[OK]).install(monkeypatch)
    rc, _res, _progress = run(tmp_path, capsys)
    assert rc == 0
    assert [c[0] for c in t.calls] == ["probe", "rsync", "probe", "rsync", "receive"]


def test_corrupt_on_the_target_with_a_sound_local_archive_drops_the_part_and_sends_again(tmp_path, capsys, monkeypatch):
    t = Target(streams=[(4, {"ok": False, "msg": "archive differs from the manifest"}, ""), OK]).install(monkeypatch)
    rc, res, _progress = run(tmp_path, capsys)
    assert rc == 0 and res["ok"] and res["attempts"] == 2
    assert t.calls == [("probe",), ("stream",), ("discard",), ("probe",), ("stream",)]


def test_corrupt_because_the_local_archive_is_damaged_stops_at_once_and_says_so(tmp_path, capsys, monkeypatch):
    damaged = b"X" + ARCHIVE[1:]
    t = Target(streams=[(4, {"ok": False, "msg": "archive differs from the manifest"}, "")]).install(monkeypatch)
    rc, res, _progress = run(tmp_path, capsys, local=damaged)
    assert rc == 1 and res["fatal"] and res["attempts"] == 1
    assert t.calls == [("probe",), ("stream",), ("discard",)]
    assert "its sha256 is %s but the manifest recorded %s" % (
        hashlib.sha256(damaged).hexdigest(), hashlib.sha256(ARCHIVE).hexdigest()) in res["msg"]
    assert "Delete %s and re-run" % (tmp_path / "stack_python.tar.zst") in res["msg"]


def test_giving_up_reports_how_much_of_the_part_the_target_keeps(tmp_path, capsys, monkeypatch):
    Target(probes=[(0, {"part_size": 0}, ""), (0, {"part_size": 2500}, "")],
           streams=[(255, {}, "")]).install(monkeypatch)
    rc, res, _progress = run(tmp_path, capsys, attempts=1)
    assert rc == 1
    assert res["msg"] == ("transfer interrupted (rc 255): the ssh connection was lost after 1 attempt(s). 2.5 kB of "
                          "%.1f kB is kept in /w/.data_sync/archives/stack_python.tar.zst.part on the target; re-run "
                          "the role to resume (only the missing bytes are sent)." % (len(ARCHIVE) / 1000.0))


@pytest.mark.parametrize("keep", [False, True])
def test_the_remote_command_quotes_its_arguments_and_unpacks_into_the_root(tmp_path, keep):
    (tmp_path / "manifest.json").write_text(json.dumps({"archives": [{
        "name": "stack python", "file": "s.tar.zst", "size": 1, "sha256": "0", "members": []}]}))
    a = argparse.Namespace(manifest=str(tmp_path / "manifest.json"), archive="stack python",
                           progress=str(tmp_path / "p.json"), remote_python="/usr/bin/python3",
                           remote_helper="/w/h.py", remote_manifest="/w/m.json", remote_state="/w/s",
                           remote_root="/w/my root", keep_archive=keep, port=2222, key="/k/id", user="root",
                           host="h", ssh_option=["StrictHostKeyChecking=yes"])
    job = transfer.Job(a)
    argv = shlex.split(job.remote("receive", "--from-part"))
    assert argv[:3] == ["/usr/bin/python3", "/w/h.py", "receive"]
    assert argv[argv.index("--archive") + 1] == "stack python" and argv[argv.index("--root") + 1] == "/w/my root"
    assert ("--keep-archive" in argv) == keep and argv[-1] == "--from-part"
    ssh = job.ssh_base()
    for opt in ("Compression=no", "ControlMaster=no", "BatchMode=yes", "StrictHostKeyChecking=yes"):
        assert ssh[ssh.index(opt) - 1] == "-o"
    assert ssh[ssh.index("-i") + 1] == "/k/id" and ssh[ssh.index("-p") + 1] == "2222"
    assert job.target() == "root@h"
