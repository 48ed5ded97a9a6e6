"""throughput_probe.py, the burn-in's controller <-> host throughput check, through a local shell standing in for ssh."""

import json

import pytest

import throughput_probe

LOCAL_SHELL = ["sh", "-c"]  # takes the remote command as ssh does: one string, run by a POSIX shell


def test_both_directions_move_every_byte_and_give_a_rate():
    result = throughput_probe.probe(LOCAL_SHELL, 4)
    assert result["bytes"] == 4 << 20
    assert result["upload_mbit"] > 0 and result["download_mbit"] > 0


def test_the_rate_is_megabits_per_second():
    assert throughput_probe.mbit_per_s(125_000, 0.01) == 100.0
    assert throughput_probe.mbit_per_s(125_000, 0) > 1e5  # too quick for the clock, never a division by zero


def test_a_host_that_sends_less_than_asked_fails_the_download(monkeypatch):
    monkeypatch.setattr(throughput_probe, "DOWNLOAD_SOURCE", "head -c 1000 /dev/urandom # %d")
    with pytest.raises(RuntimeError, match="1000 of 4194304 bytes"):
        throughput_probe.download(LOCAL_SHELL, 4 << 20)


def test_an_unreachable_host_fails_with_ssh_s_exit_status(capsys):
    assert throughput_probe.main(["--megabytes", "2", "--", "sh", "-c", "exit 255"]) == 1
    assert "ssh exited 255" in capsys.readouterr().err


def test_the_command_line_prints_one_json_line(capsys):
    assert throughput_probe.main(["--megabytes", "2", "--"] + LOCAL_SHELL) == 0
    assert set(json.loads(capsys.readouterr().out)) == {"upload_mbit", "download_mbit", "bytes"}
