"""data_sync_transfer.py against a stand-in host: `ssh` is a script on PATH that drops its options and the host and
runs the remote command with sh in a temporary $HOME, so the raw probe, the raw writer (`cat >> .part`) and the real
helper's `receive --from-part --follow` all run as they would on the host."""

import gzip
import json
import os
import shlex
import subprocess
import sys
import threading
import time

import pytest

from _load import FILES, script, sha, tar_bytes

transfer = script("data_sync_transfer")
HELPER = os.path.join(FILES, "data_sync_remote.py")
MEMBERS = {"data/python_sample.jsonl": os.urandom(150000), "checkpoints/vfn.safetensors": os.urandom(90000)}

FAKE_SSH = r"""#!/bin/sh
# ssh's stand-in: drop the options and the host, log the command, run it with sh. The writer's input is kept per
# writer (writer.1, writer.2...); a file "cut" holding N makes the next writer's link die after N bytes, a file
# "refuse" makes every connection fail.
while [ $# -gt 0 ]; do
  case $1 in -p|-o|-i) shift 2 ;; -*) shift ;; *) break ;; esac
done
shift
cmd=$*
line=$(printf '%s' "$cmd" | tr '\n' ' ')
printf '%s\n' "$line" >> "$FAKE_SSH_DIR/log"  # one write: the writer and the follower log at the same time
if [ -f "$FAKE_SSH_DIR/refuse" ]; then
  echo "ssh: connect to host 10.0.0.1 port 22: Connection refused" >&2
  exit 255
fi
case $cmd in
  *'exec cat'*)
    k=$(( $(ls "$FAKE_SSH_DIR" | grep -c '^writer\.') + 1 ))
    if [ -f "$FAKE_SSH_DIR/cut" ]; then
      n=$(cat "$FAKE_SSH_DIR/cut")
      rm -f "$FAKE_SSH_DIR/cut"
      head -c "$n" | tee "$FAKE_SSH_DIR/writer.$k" | sh -c "$cmd"
      echo "Connection to 10.0.0.1 closed by remote host." >&2
      exit 255
    fi
    tee "$FAKE_SSH_DIR/writer.$k" | sh -c "$cmd"
    exit $? ;;
esac
exec sh -c "$cmd"
"""


def archive_bytes(members):
    return gzip.compress(tar_bytes(members))


class Host:
    """The controller's staging dir and the stand-in host's $HOME, with ssh on PATH."""

    def __init__(self, tmp_path, monkeypatch):
        self.tmp = tmp_path
        self.home = tmp_path / "home"
        self.ssh_dir = tmp_path / "ssh"
        self.staging = tmp_path / "staging"
        for d in (self.home, self.ssh_dir, self.staging, tmp_path / "bin"):
            d.mkdir()
        ssh = tmp_path / "bin" / "ssh"
        ssh.write_text(FAKE_SSH)
        ssh.chmod(0o755)
        monkeypatch.setenv("PATH", "%s:%s" % (tmp_path / "bin", os.environ["PATH"]))
        monkeypatch.setenv("HOME", str(self.home))
        monkeypatch.setenv("FAKE_SSH_DIR", str(self.ssh_dir))
        # Attempts follow each other at once here; the pause between them is for real links.
        monkeypatch.setattr(transfer.Job, "pause", lambda job, attempt: None)
        self.data = archive_bytes(MEMBERS)
        self.arc = {"name": "stack_python", "file": "stack_python.tar.gz", "codec": "gzip", "size": len(self.data),
                    "sha256": sha(self.data),
                    "members": [{"path": k, "size": len(v), "sha256": sha(v)} for k, v in MEMBERS.items()]}
        manifest = json.dumps({"format": 1, "archives": [self.arc]})
        (self.staging / "manifest.json").write_text(manifest)
        (self.staging / self.arc["file"]).write_bytes(self.data)
        (self.home / "w").mkdir()
        (self.home / "w" / "m.json").write_text(manifest)
        self.state = self.home / "w" / ".data_sync"
        self.part = self.state / "archives" / "stack_python.tar.gz.part"
        self.marker = self.state / "verified" / "stack_python.verified"
        self.progress = tmp_path / "progress.json"

    def argv(self, attempts=3, extra=()):
        return ["--manifest", str(self.staging / "manifest.json"), "--archive", "stack_python",
                "--progress", str(self.progress), "--ssh", '["ssh", "10.0.0.1"]', "--remote-python", sys.executable,
                "--remote-helper", HELPER, "--remote-manifest", "~/w/m.json", "--remote-root", "~/w",
                "--remote-state", "~/w/.data_sync", "--slot-dir", str(self.tmp / "slots"),
                "--attempts", str(attempts)] + list(extra)

    def run(self, capsys, **kw):
        rc = transfer.main(self.argv(**kw))
        return rc, json.loads(capsys.readouterr().out.strip().splitlines()[-1]), self.read_progress()

    def read_progress(self):
        return json.loads(self.progress.read_text())

    def log(self):
        try:
            return (self.ssh_dir / "log").read_text().splitlines()
        except FileNotFoundError:
            return []

    def kinds(self):
        """What each ssh call was: probe, writer, follow or discard."""
        out = []
        for cmd in self.log():
            if "DATA_SYNC_PROBE" in cmd:
                out.append("probe")
            elif "exec cat" in cmd:
                out.append("writer")
            elif " receive " in cmd:
                out.append("follow" if "--follow" in cmd else "receive")
            else:
                out.append(cmd.split()[2])
        # The writer and the follower start together: which one logs first is up to the scheduler.
        for i in range(len(out) - 1):
            if out[i:i + 2] == ["follow", "writer"]:
                out[i:i + 2] = ["writer", "follow"]
        return out

    def writes(self):
        """The bytes each writer was given, in order."""
        return [(self.ssh_dir / ("writer.%d" % k)).read_bytes() for k in range(1, len(self.kinds()) + 1)
                if (self.ssh_dir / ("writer.%d" % k)).exists()]

    def placed(self):
        return {name: (self.home / "w" / name).read_bytes() for name in MEMBERS if (self.home / "w" / name).exists()}


@pytest.fixture(name="host")
def host_fixture(tmp_path, monkeypatch):
    return Host(tmp_path, monkeypatch)


def test_a_fresh_host_gets_the_archive_streamed_and_unpacked(host, capsys):
    rc, res, progress = host.run(capsys)
    assert rc == 0 and res["ok"] and res["methods"] == ["stream"] and res["attempts"] == 1
    assert res["sent"] == len(host.data) and res["msg"] == "verified and in place"
    assert host.kinds() == ["probe", "writer", "follow"]
    assert host.writes() == [host.data]
    assert host.placed() == MEMBERS and host.marker.read_text().strip() == sha(host.data)
    assert os.listdir(str(host.part.parent)) == [], "neither the .part nor the writer's pid file is left"
    assert (progress["state"], progress["bytes"], progress["total"]) == ("done", len(host.data), len(host.data))
    for key in ("archive", "file", "state", "bytes", "total", "rate", "eta", "attempt", "method", "ssh_pid", "sent",
                "started", "updated", "message"):
        assert key in progress


def test_without_the_go_ahead_the_bytes_go_but_the_follower_waits_for_it(host, capsys):
    go = host.tmp / "go-ahead"
    result = {}
    argv = host.argv(extra=["--go-ahead", str(go)])
    job = threading.Thread(target=lambda: result.setdefault("rc", transfer.main(argv)))
    job.start()
    deadline = time.time() + 60
    while not (host.progress.exists() and host.read_progress()["state"] == "waiting") and time.time() < deadline:
        job.join(0.05)
    assert host.read_progress()["state"] == "waiting"
    assert host.part.read_bytes() == host.data, "every byte is on the host before the go-ahead"
    assert host.kinds() == ["probe", "writer"] and host.placed() == {}
    go.write_text("")
    job.join(60)
    assert result["rc"] == 0
    res = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert res["ok"] and host.kinds() == ["probe", "writer", "follow"] and host.placed() == MEMBERS


def test_a_go_ahead_that_says_stop_kills_the_writer_keeps_the_part_and_fails_with_its_reason(host, capsys):
    go = host.tmp / "go-ahead"
    go.write_text("stop the host failed its burn-in (42 Mbit/s)\n")
    # 1 KiB/s: the writer would need minutes; the stop ends it at once.
    rc, res, progress = host.run(capsys, extra=["--go-ahead", str(go), "--bwlimit", "1"])
    assert rc == 1 and not res["ok"] and res["fatal"] and res["attempts"] == 1
    assert res["msg"].startswith("the host failed its burn-in (42 Mbit/s). The upload of stack_python stopped before")
    assert progress["state"] == "failed"
    assert "follow" not in host.kinds() and host.placed() == {}
    assert res["sent"] < len(host.data)
    assert all(len(w) < len(host.data) for w in host.writes())
    writer = host.part.parent / (host.part.name + ".writer")
    if writer.exists():  # the host's `cat` got that far: it ends with its ssh
        pid = int(writer.read_text())
        deadline = time.time() + 30
        while os.path.exists("/proc/%d" % pid) and time.time() < deadline:
            time.sleep(0.05)
        assert not os.path.exists("/proc/%d" % pid), "the writer on the host still runs"


def test_a_go_ahead_that_never_comes_ends_the_job_and_keeps_what_was_sent(host, capsys):
    """The play stopped before the host had its tools (apt failed, say): the job does not wait out Ansible's async
    timeout on the controller, and a re-run resumes from the .part."""
    go = host.tmp / "go-ahead"
    rc, res, progress = host.run(capsys, extra=["--go-ahead", str(go), "--go-ahead-timeout", "0"])
    assert rc == 1 and res["fatal"] and progress["state"] == "failed"
    assert res["msg"].startswith("the play gave no go-ahead within 0 s (it stopped before the host had its tools); "
                                 "re-run the role. The upload of stack_python stopped before it was unpacked")
    assert "follow" not in host.kinds() and host.placed() == {}


def test_an_archive_verified_on_the_host_sends_nothing_and_is_skipped(host, capsys):
    host.marker.parent.mkdir(parents=True)
    host.marker.write_text(sha(host.data) + "\n")
    rc, res, progress = host.run(capsys)
    assert rc == 0 and res["ok"] and res["msg"] == "already verified on the host" and res["sent"] == 0
    assert host.kinds() == ["probe"]
    assert progress["state"] == "skipped", "not 'done': a later job for this archive must run itself"
    assert not transfer.previous_upload_succeeded(str(host.progress))


def test_a_verified_archive_the_plan_still_names_is_sent_again(host, capsys):
    """The marker matches but a file of the archive was removed on the host: the play's plan names it in the
    go-ahead, so the job sends and unpacks it instead of skipping it."""
    host.marker.parent.mkdir(parents=True)
    host.marker.write_text(sha(host.data) + "\n")
    go_ahead = host.tmp / "go-ahead"
    go_ahead.write_text("go VoltStaging stack_python\n")
    rc, res, _progress = host.run(capsys, extra=["--go-ahead", str(go_ahead)])
    assert rc == 0 and res["ok"] and res["msg"] == "verified and in place" and res["sent"] == len(host.data)
    assert host.kinds() == ["probe", "writer", "follow"] and host.placed() == MEMBERS


def test_a_verified_archive_the_plan_does_not_name_is_skipped_after_the_go_ahead(host, capsys):
    host.marker.parent.mkdir(parents=True)
    host.marker.write_text(sha(host.data) + "\n")
    go_ahead = host.tmp / "go-ahead"
    go_ahead.write_text("go VoltStaging\n")
    rc, res, progress = host.run(capsys, extra=["--go-ahead", str(go_ahead)])
    assert rc == 0 and res["msg"] == "already verified on the host" and res["sent"] == 0
    assert host.kinds() == ["probe"] and progress["state"] == "skipped"


def test_too_little_disk_fails_before_the_first_byte(host, capsys):
    rc, res, progress = host.run(capsys, extra=["--margin", str(10 ** 18)])
    assert rc == 1 and res["fatal"] and res["sent"] == 0 and progress["state"] == "failed"
    assert res["msg"].startswith("Not enough disk space on the target for stack_python: it needs ")
    assert "Nothing was sent" in res["msg"] and " is free under ~/w/.data_sync/archives" in res["msg"]
    assert host.kinds() == ["probe"]


def test_where_the_whole_manifest_may_not_fit_the_job_waits_for_the_plan_and_stops_with_it(host, capsys):
    go_ahead = host.tmp / "go-ahead"
    go_ahead.write_text("stop Not enough disk space on the target for the data: needs 2 GB, 1 GB free on /w\n")
    rc, res, _progress = host.run(capsys, extra=["--margin", str(10 ** 18), "--go-ahead", str(go_ahead)])
    assert rc == 1 and res["fatal"] and res["sent"] == 0
    assert res["msg"].startswith("Not enough disk space on the target for the data: needs 2 GB")
    assert "Nothing of stack_python was sent" in res["msg"] and host.kinds() == ["probe"]


def test_where_the_whole_manifest_may_not_fit_the_plan_s_go_ahead_sends_it(host, capsys):
    go_ahead = host.tmp / "go-ahead"
    go_ahead.write_text("go stack_python\n")
    rc, res, _progress = host.run(capsys, extra=["--margin", str(10 ** 18), "--go-ahead", str(go_ahead)])
    assert rc == 0 and res["ok"] and res["sent"] == len(host.data) and host.placed() == MEMBERS


def test_a_writer_whose_link_dies_is_resumed_by_appending_from_the_part_size(host, capsys):
    (host.ssh_dir / "cut").write_text("100000")
    rc, res, _progress = host.run(capsys)
    assert rc == 0 and res["ok"] and res["methods"] == ["stream", "append"] and res["attempts"] == 2
    assert host.kinds() == ["probe", "writer", "follow", "probe", "writer", "follow"]
    first, second = host.writes()
    assert first == host.data[:100000] and second == host.data[100000:], "only the missing tail is sent again"
    assert host.placed() == MEMBERS and not host.part.exists()


def test_giving_up_reports_how_much_of_the_part_the_host_keeps(host, capsys):
    (host.ssh_dir / "cut").write_text("2500")
    rc, res, progress = host.run(capsys, attempts=1)
    assert rc == 1 and not res["fatal"] and progress["state"] == "failed"
    assert res["msg"] == (
        "transfer interrupted (rc 255): Connection to 10.0.0.1 closed by remote host. after 1 attempt(s). 2.5 kB of "
        "%.1f kB is kept in ~/w/.data_sync/archives/stack_python.tar.gz.part on the target; re-run the role to "
        "resume (only the missing bytes are sent)." % (len(host.data) / 1000.0))
    assert host.part.read_bytes() == host.data[:2500] and host.placed() == {}


def test_a_corrupt_part_with_a_sound_local_archive_is_dropped_and_sent_again(host, capsys):
    host.part.parent.mkdir(parents=True)
    host.part.write_bytes(b"X" * 1000)  # a bad prefix: appending the rest cannot make it right
    rc, res, _progress = host.run(capsys)
    assert rc == 0 and res["ok"] and res["methods"] == ["append", "stream"] and res["attempts"] == 2
    assert host.kinds() == ["probe", "writer", "follow", "discard", "probe", "writer", "follow"]
    assert host.writes() == [host.data[1000:], host.data]
    assert host.placed() == MEMBERS


def test_corrupt_because_the_local_archive_is_damaged_stops_at_once_and_says_so(host, capsys):
    damaged = b"X" + host.data[1:]
    (host.staging / host.arc["file"]).write_bytes(damaged)
    rc, res, _progress = host.run(capsys)
    assert rc == 1 and res["fatal"] and res["attempts"] == 1
    assert host.kinds() == ["probe", "writer", "follow", "discard"]
    assert "its sha256 is %s but the manifest recorded %s" % (sha(damaged), sha(host.data)) in res["msg"]
    assert "Delete %s and re-run" % (host.staging / host.arc["file"]) in res["msg"]
    assert host.placed() == {} and not host.part.exists()


def test_probes_failing_every_time_give_up_with_the_reason_and_the_attempts(host, capsys):
    (host.ssh_dir / "refuse").write_text("")
    rc, res, progress = host.run(capsys, attempts=2)
    assert rc == 1 and not res["ok"] and not res["fatal"] and progress["state"] == "failed"
    assert res["msg"].startswith("probe over ssh failed (rc 255): ssh: connect to host 10.0.0.1 port 22: "
                                 "Connection refused after 2 attempt(s).")
    assert "re-run the role to resume" in res["msg"]


# --- the raw shell, run with sh as the host's login shell would -----------------------------------------------------
def probe(home, archives, part, marker, size):
    cmd = transfer.sh_c(transfer.PROBE_SH, archives, part, marker, str(size))
    p = subprocess.run(["sh", "-c", cmd], env=dict(os.environ, HOME=str(home)), stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, check=True, timeout=60)
    (line,) = [x for x in p.stdout.decode().splitlines() if x.startswith(transfer.PROBE_TAG)]
    return dict(f.split("=", 1) for f in line.split()[1:])


def test_remote_paths_keep_a_leading_tilde_as_the_hosts_home_and_quote_the_rest(tmp_path):
    cmd = transfer.sh_c('printf "%s|" "$@"', "~/a b/$x", "/abs/it's", "~")
    out = subprocess.run(["sh", "-c", cmd], env=dict(os.environ, HOME=str(tmp_path)), stdout=subprocess.PIPE,
                         check=True).stdout.decode()
    assert out == "%s/a b/$x|/abs/it's|%s|" % (tmp_path, tmp_path)


def test_the_probe_reports_the_part_the_free_space_and_the_marker(tmp_path):
    archives = tmp_path / "w" / ".data_sync" / "archives"
    archives.mkdir(parents=True)
    (archives / "a.part").write_bytes(b"x" * 1234)
    (tmp_path / "a.verified").write_text("ab12cd\n")
    out = probe(tmp_path, "~/w/.data_sync/archives", "~/w/.data_sync/archives/a.part", "~/a.verified", 5000)
    assert (out["part"], out["marker"]) == ("1234", "ab12cd")
    st = os.statvfs(str(archives))
    assert abs(int(out["free_kb"]) * 1024 - st.f_bavail * st.f_frsize) < 256 << 20


def test_the_probe_measures_free_space_at_the_nearest_existing_ancestor(tmp_path):
    out = probe(tmp_path, "~/not/yet/made/archives", "~/not/yet/made/archives/a.part", "~/none.verified", 10)
    assert (out["part"], out["marker"]) == ("0", "") and int(out["free_kb"]) > 0


def test_the_probe_drops_a_part_longer_than_the_archive(tmp_path):
    (tmp_path / "a.part").write_bytes(b"x" * 11)
    out = probe(tmp_path, "~", "~/a.part", "~/m", 10)
    assert out["part"] == "0" and not (tmp_path / "a.part").exists()


def reaped(proc):
    th = threading.Thread(target=proc.wait, daemon=True)
    th.start()
    return th


def test_the_probe_stops_a_stale_writer_and_leaves_another_process_alone(tmp_path):
    stale = subprocess.Popen(["cat"], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL)
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    waiter = reaped(stale)
    try:
        (tmp_path / "a.part").write_bytes(b"x" * 5)
        (tmp_path / "a.part.writer").write_text("%d\n" % stale.pid)
        assert probe(tmp_path, "~", "~/a.part", "~/m", 10)["part"] == "5"
        waiter.join(10)
        assert stale.poll() is not None, "the stale writer still runs"
        assert not (tmp_path / "a.part.writer").exists()
        (tmp_path / "a.part.writer").write_text("%d\n" % other.pid)
        probe(tmp_path, "~", "~/a.part", "~/m", 10)
        assert other.poll() is None, "a process that is not a writer was killed"
    finally:
        for proc in (stale, other):
            if proc.poll() is None:
                proc.kill()
        other.wait()


def test_the_helper_gets_absolute_paths_and_quoted_arguments(host):
    job = transfer.Job(transfer.parse_args(host.argv(extra=[
        "--keep-archive", "--ssh", '["ssh", "-p", "2222", "-i", "/k/id", "-o", "StrictHostKeyChecking=yes", "root@h"]'])))
    cmd = job.remote("receive", "--from-part", "--follow")
    out = subprocess.run(["sh", "-c", 'printf "%s\\n" ' + cmd.split(" ", 2)[2]],
                         env=dict(os.environ, HOME="/home/x y"), stdout=subprocess.PIPE,
                         check=True).stdout.decode().splitlines()
    assert out[out.index("--root") + 1] == "/home/x y/w" and out[out.index("--state") + 1] == "/home/x y/w/.data_sync"
    assert out[out.index("--manifest") + 1] == "/home/x y/w/m.json" and "--keep-archive" in out
    assert shlex.split(cmd)[:2] == [sys.executable, HELPER]
    # The connection given (voltx.vastai.ssh_argv's) is kept whole, destination last; a bulk stream's options go first.
    assert job.ssh("true") == ["ssh", "-o", "BatchMode=yes", "-o", "Compression=no", "-p", "2222", "-i", "/k/id",
                               "-o", "StrictHostKeyChecking=yes", "root@h", "true"]


def add_archive(host, name, members):
    """A second archive in the manifest (on the controller and on the host), for the one-job-per-launch tests."""
    data = archive_bytes(members)
    arc = {"name": name, "file": name + ".tar.gz", "codec": "gzip", "size": len(data), "sha256": sha(data),
           "members": [{"path": k, "size": len(v), "sha256": sha(v)} for k, v in members.items()]}
    manifest = json.dumps({"format": 1, "archives": [host.arc, arc]})
    (host.staging / "manifest.json").write_text(manifest)
    (host.home / "w" / "m.json").write_text(manifest)
    (host.staging / arc["file"]).write_bytes(data)
    return data


def several_argv(host, names, extra=()):
    """One launch for NAMES: --progress-dir instead of --progress, one --archive each."""
    argv = host.argv(extra=extra)
    i = argv.index("--progress")
    argv[i:i + 2] = ["--progress-dir", str(host.tmp / "progress")]
    argv.remove("--archive")
    argv.remove("stack_python")
    return argv + ["--archive=%s" % name for name in names]


OTHER = {"data/apps.jsonl": os.urandom(70000)}


def test_one_launch_sends_every_archive_and_reports_each_on_one_line(host, capsys):
    add_archive(host, "VoltStaging", OTHER)
    rc = transfer.main(several_argv(host, ["stack_python", "VoltStaging"]))
    results = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert rc == 0 and [r["archive"] for r in results] == ["stack_python", "VoltStaging"]
    assert all(r["ok"] and r["msg"] == "verified and in place" for r in results)
    assert host.placed() == MEMBERS and (host.home / "w" / "data/apps.jsonl").read_bytes() == OTHER["data/apps.jsonl"]
    for name in ("stack_python", "VoltStaging"):
        assert json.loads((host.tmp / "progress" / (name + ".json")).read_text())["state"] == "done"


def test_one_launch_takes_back_an_earlier_run_s_go_ahead_and_unpacks_on_this_run_s(host, capsys):
    """An earlier run's word (here: stop) must not reach this run's uploads; they wait for the new one."""
    go_ahead = host.tmp / "go-ahead"
    go_ahead.write_text("stop the earlier run's disk guard\n")
    argv = several_argv(host, ["stack_python"], extra=["--go-ahead", str(go_ahead), "--take-back-go-ahead"])
    outcome = {}
    job = threading.Thread(target=lambda: outcome.update(rc=transfer.main(argv)))
    job.start()
    # The play writes its go-ahead once the helper is on the host, after the launch took back the old one.
    while go_ahead.exists():
        time.sleep(0.05)
    go_ahead.write_text("go stack_python\n")
    job.join()
    results = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert outcome["rc"] == 0 and results[0]["ok"] and host.placed() == MEMBERS


def test_an_archive_whose_process_ends_without_a_result_is_reported_failed(host, capsys):
    rc = transfer.main(several_argv(host, ["stack_python", "no_such_archive"]))
    results = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert rc == 1 and results[0]["ok"] and results[0]["archive"] == "stack_python"
    assert results[1]["archive"] == "no_such_archive" and not results[1]["ok"]
    assert results[1]["msg"].startswith("the upload ended without a result (rc 1): ")


def test_one_archive_needs_its_progress_file_and_several_need_a_progress_dir(host):
    argv = host.argv()
    with pytest.raises(SystemExit):
        transfer.parse_args(argv + ["--archive", "VoltStaging"])
    i = argv.index("--progress")
    with pytest.raises(SystemExit):
        transfer.parse_args(argv[:i] + argv[i + 2:])
