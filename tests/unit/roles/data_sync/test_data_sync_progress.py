"""data_sync_progress.py: the lines a user watches while the archives travel, and the byte sizes every script prints."""

import json
import os
import subprocess
import sys
import time

import pytest

from _load import FILES, script

progress = script("data_sync_progress")


@pytest.mark.parametrize("n, text", [
    (0, "0 B"), (None, "0 B"), (999, "999 B"), (1000, "1.0 kB"), (1234567, "1.2 MB"), (96 * 10 ** 9, "96.0 GB"),
    (142.5e9, "142.5 GB"), (3 * 10 ** 12, "3.0 TB"), (5 * 10 ** 15, "5000.0 TB"),
])
def test_human_sizes_are_decimal_units(n, text):
    assert progress.human(n) == text


@pytest.mark.parametrize("name", ["data_sync_pack", "data_sync_transfer", "data_sync_remote"])
def test_every_data_sync_script_prints_sizes_the_same_way(name):
    other = script(name)
    for n in (0, 5, 999, 1000, 999999, 1234567, 10 ** 12, 5 * 10 ** 15):
        assert other.human(n) == progress.human(n)


def test_a_streaming_archive_shows_bytes_percentage_rate_eta_attempt_and_method():
    text = progress.line({"archive": "VoltStaging", "state": "streaming", "bytes": 250 * 10 ** 6, "total": 10 ** 9,
                          "rate": 12.5 * 10 ** 6, "eta": 3725, "attempt": 2, "method": "stream"})
    assert text.split() == ["VoltStaging", "streaming", "250.0", "MB", "/", "1.0", "GB", "25.0%",
                            "12.5", "MB/s", "ETA", "1:02:05", "attempt", "2", "(stream)"]


def test_a_finished_archive_shows_what_was_sent_and_how_long_it_took():
    text = progress.line({"archive": "stack_python", "state": "done", "bytes": 2000, "total": 2000, "sent": 1500,
                          "started": 100.0, "updated": 165.0, "attempt": 1, "method": "append"})
    assert "100.0%" in text and "ETA" not in text
    assert text.endswith("attempt 1 (append)  sent 1.5 kB in 0:01:05")


def test_an_unreadable_progress_file_reads_as_starting(tmp_path):
    garbage = tmp_path / "g.json"
    garbage.write_text("{not json")
    assert progress.read(str(garbage)) == {"archive": str(garbage), "state": "starting"}
    assert progress.read(str(tmp_path / "absent.json"))["state"] == "starting"
    assert "0.0%" in progress.line(progress.read(str(garbage)))


def test_main_returns_at_once_when_every_transfer_is_final_and_prints_one_line_each(tmp_path, capsys):
    files = []
    for name, state in (("a", "done"), ("b", "failed")):
        path = tmp_path / (name + ".json")
        path.write_text(json.dumps({"archive": name, "state": state, "bytes": 1, "total": 1}))
        files.append(str(path))
    started = time.time()
    assert progress.main(["--wait", "30"] + files) == 0
    assert time.time() - started < 5
    lines = capsys.readouterr().out.splitlines()
    assert [ln.split()[:2] for ln in lines] == [["a", "done"], ["b", "failed"]]


def test_main_stops_waiting_after_wait_seconds_while_a_transfer_still_runs(tmp_path, capsys):
    path = tmp_path / "a.json"
    path.write_text(json.dumps({"archive": "a", "state": "streaming", "bytes": 1, "total": 4}))
    started = time.time()
    assert progress.main(["--wait", "0.6", str(path)]) == 0
    assert 0.5 <= time.time() - started < 5
    assert "25.0%" in capsys.readouterr().out


@pytest.mark.parametrize("name, argv", [
    ("data_sync_progress", ["--wait", "0", "absent.json"]),
    ("data_sync_pack", ["check", "--request", json.dumps({
        "files": {}, "layout": {"checkpoints": "c", "data": "d", "stack_python": "p", "multilang": "m"},
        "names": {"staging": "S", "stack_python": "P", "stack_multilang": "M"}, "codec": "gzip", "tools": []})]),
    ("data_sync_transfer", ["--help"]),
])
def test_the_controller_scripts_run_as_the_role_runs_them(tmp_path, name, argv):
    """By their path, from another directory, with no PYTHONPATH: the helpers they share must come along."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    p = subprocess.run([sys.executable, os.path.join(FILES, name + ".py")] + argv, cwd=str(tmp_path), env=env,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60, check=False)
    assert p.returncode == 0, p.stderr.decode()
    assert p.stdout.strip()


def test_an_archive_already_verified_on_the_host_counts_as_finished(tmp_path, monkeypatch, capsys):
    skipped = tmp_path / "s.json"
    skipped.write_text('{"archive": "stack_python", "state": "skipped", "bytes": 2000, "total": 2000, "sent": 0}')

    def no_wait(_seconds):
        raise AssertionError("waited for an archive that is finished")

    monkeypatch.setattr(progress.time, "sleep", no_wait)
    assert progress.main(["--wait", "600", str(skipped)]) == 0
    assert capsys.readouterr().out.split()[:2] == ["stack_python", "skipped"]
