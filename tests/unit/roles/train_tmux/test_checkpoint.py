"""checkpoint.py: the one artifact checker (codebook, safetensors) and the curriculum's resume decision."""

import json
import os
import struct
import time

import pytest

import checkpoint


def safetensors(path, meta=None, truncate=0):
    header = {"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}
    if meta is not None:
        header["__metadata__"] = meta
    raw = json.dumps(header).encode()
    data = struct.pack("<Q", len(raw)) + raw + b"\0" * 8
    with open(path, "wb") as f:
        f.write(data[:len(data) - truncate])
    return str(path)


def codebook(path, data):
    with open(path, "wb") as f:
        f.write(data)
    return str(path)


def marker(path, status):
    with open(path, "w") as f:
        json.dump({"job": "phase21_stage1", "status": status}, f)
    return str(path)


def age(path, seconds):
    """Make PATH look SECONDS old (mtime), so ordering by age does not depend on the clock's resolution."""
    t = time.time() - seconds
    os.utime(path, (t, t))


FIXTURE_CODEBOOK = b"VXCB" + struct.pack("<II", 2, 3) + b"\0" * 24


# --- codebook -----------------------------------------------------------------------------------------

def test_generic_codebook_accepts_a_headerless_file(tmp_path):
    info = checkpoint.check(codebook(tmp_path / "codebook_code.bin", b"\x01" * 4096), settle_s=0)
    assert (info["kind"], info["size"], info["format"]) == ("codebook", 4096, "generic")


def test_generic_codebook_refuses_an_empty_file(tmp_path):
    with pytest.raises(checkpoint.Invalid, match="empty"):
        checkpoint.check(codebook(tmp_path / "codebook_code.bin", b""), settle_s=0)


def test_generic_codebook_refuses_a_missing_file(tmp_path):
    with pytest.raises(checkpoint.Invalid, match="missing"):
        checkpoint.check(str(tmp_path / "codebook_code.bin"), settle_s=0)


def test_codebook_growing_between_two_looks_is_being_written(tmp_path):
    path = codebook(tmp_path / "codebook_code.bin", b"\x01" * 100)

    def writer_appends(_seconds):
        with open(path, "ab") as f:
            f.write(b"\x02" * 50)

    with pytest.raises(checkpoint.Invalid, match="still being written: 100 bytes, then 150"):
        checkpoint.check_codebook(path, settle_s=1, wait=writer_appends)
    waited = []
    assert checkpoint.check_codebook(path, settle_s=1, wait=waited.append)["size"] == 150
    assert waited == [1]


def test_codebook_of_another_size_than_expected_is_refused(tmp_path):
    path = codebook(tmp_path / "codebook_code.bin", b"\x01" * 100)
    with pytest.raises(checkpoint.Invalid, match="100 bytes, 128 expected"):
        checkpoint.check(path, codebook_size=128, settle_s=0)
    assert checkpoint.check(path, codebook_size=100, settle_s=0)["size"] == 100


def test_fixture_format_is_opt_in(tmp_path):
    headerless = codebook(tmp_path / "a.bin", b"\x01" * 24)
    with pytest.raises(checkpoint.Invalid, match="no VXCB codebook header"):
        checkpoint.check(headerless, codebook_format="voltx-fixture", settle_s=0)
    info = checkpoint.check(codebook(tmp_path / "b.bin", FIXTURE_CODEBOOK), codebook_format="voltx-fixture", settle_s=0)
    assert (info["k"], info["dim"]) == (2, 3)
    with pytest.raises(checkpoint.Invalid, match="k=2 dim=3 needs 36 bytes, the file has 35"):
        checkpoint.check(codebook(tmp_path / "c.bin", FIXTURE_CODEBOOK[:-1]), codebook_format="voltx-fixture",
                         settle_s=0)


def test_generic_codebook_is_done_only_with_its_jobs_exit_status(tmp_path):
    path = codebook(tmp_path / "codebook_code.bin", b"\x01" * 64)
    with pytest.raises(checkpoint.Invalid, match="marker"):
        checkpoint.done(path, settle_s=0)
    with pytest.raises(checkpoint.Invalid, match="no exit status 0"):
        checkpoint.done(path, marker(tmp_path / "phase03.exit", 137), settle_s=0)
    checkpoint.done(path, marker(tmp_path / "phase03.exit", 0), settle_s=0)
    fixture = codebook(tmp_path / "f.bin", FIXTURE_CODEBOOK)
    checkpoint.done(fixture, codebook_format="voltx-fixture", settle_s=0)


# --- safetensors and stage completion ---------------------------------------------------------------------

def test_truncated_safetensors_is_refused(tmp_path):
    with pytest.raises(checkpoint.Invalid, match="truncated"):
        checkpoint.check(safetensors(tmp_path / "s.safetensors", truncate=3))


def test_stage_is_done_on_a_valid_output_and_exit_status_0_without_any_metadata(tmp_path):
    out = safetensors(tmp_path / "scaled_vfn_stage1.safetensors", meta={"format": "pt"})
    action, _arg, _msg = checkpoint.stage_decision(out, marker(tmp_path / "s1.exit", 0), None, 3)
    assert action == "done"


@pytest.mark.parametrize("status", [None, 1])
def test_stage_with_a_valid_output_but_no_exit_status_0_is_not_done(tmp_path, status):
    out = safetensors(tmp_path / "scaled_vfn_stage1.safetensors")
    mark = str(tmp_path / "s1.exit") if status is None else marker(tmp_path / "s1.exit", status)
    assert checkpoint.stage_decision(out, mark, None, 3)[0] == "fresh"


def test_stage_with_a_truncated_output_is_not_done(tmp_path):
    out = safetensors(tmp_path / "scaled_vfn_stage1.safetensors", truncate=1)
    assert checkpoint.stage_decision(out, marker(tmp_path / "s1.exit", 0), None, 3)[0] == "fresh"


# --- resume decision ------------------------------------------------------------------------------------------

@pytest.fixture(name="died_after_epoch_2")
def _died_after_epoch_2(tmp_path):
    """Stage 2 started (stamp), wrote epochs 1 and 2, died. Epoch 3 on disk is stage 1's, older than the stamp."""
    ck = tmp_path / "checkpoints"
    ck.mkdir()
    age(safetensors(ck / "scaled_vfn_epoch_3.safetensors"), 100)
    stamp = tmp_path / "phase21_stage2.started"
    stamp.write_text("")
    age(str(stamp), 50)
    safetensors(ck / "scaled_vfn_epoch_1.safetensors")
    safetensors(ck / "scaled_vfn_epoch_2.safetensors")
    age(safetensors(ck / "scaled_vfn_epoch_9.safetensors", truncate=4), 0)  # killed while writing: not used
    return str(ck / "scaled_vfn_stage2.safetensors"), str(tmp_path / "phase21_stage2.exit"), str(stamp)


def test_resume_from_the_newest_epoch_of_this_stage_when_train_vfn_can(died_after_epoch_2):
    out, mark, stamp = died_after_epoch_2
    action, arg, msg = checkpoint.stage_decision(out, mark, stamp, 3, "--resume")
    assert (action, os.path.basename(arg)) == ("resume", "scaled_vfn_epoch_2.safetensors")
    assert "epoch 2 of 3" in msg


def test_restart_with_a_warning_counting_the_lost_epochs_when_train_vfn_cannot_resume(died_after_epoch_2):
    out, mark, stamp = died_after_epoch_2
    action, arg, msg = checkpoint.stage_decision(out, mark, stamp, 3, "")
    assert (action, arg) == ("restart", "2")
    assert msg.startswith("WARNING")
    assert "2 completed epoch(s) lost" in msg


def test_a_stage_that_never_started_does_not_take_an_earlier_stages_epochs(died_after_epoch_2, tmp_path):
    out, _mark, _stamp = died_after_epoch_2
    never = str(tmp_path / "phase21_stage3.started")
    assert checkpoint.stage_decision(out.replace("stage2", "stage3"), str(tmp_path / "s3.exit"), never, 3,
                                     "--resume")[:2] == ("fresh", "-")
    assert checkpoint.latest(out, never) is None


def test_a_stage_that_died_before_its_first_epoch_starts_over_losing_nothing(tmp_path):
    stamp = tmp_path / "phase21_stage1.started"
    stamp.write_text("")
    action, _arg, msg = checkpoint.stage_decision(str(tmp_path / "scaled_vfn_stage1.safetensors"),
                                                  str(tmp_path / "s1.exit"), str(stamp), 3, "")
    assert action == "fresh"
    assert "no epoch lost" in msg


def test_cli_stage_prints_one_tab_separated_line(died_after_epoch_2, capsys):
    out, mark, stamp = died_after_epoch_2
    assert checkpoint.main(["stage", out, "--marker", mark, "--since", stamp, "--epochs", "3"]) == 0
    action, arg, msg = capsys.readouterr().out.rstrip("\n").split("\t")
    assert (action, arg) == ("restart", "2") and "lost" in msg


def test_cli_check_reports_json_and_exit_status(tmp_path, capsys):
    bad = codebook(tmp_path / "codebook_code.bin", b"")
    assert checkpoint.main(["check", bad, "--settle", "0"]) == 1
    assert json.loads(capsys.readouterr().out) == {"path": bad, "valid": False, "error": "empty (0 bytes)"}


def test_cli_stage_takes_a_resume_flag_that_starts_with_dashes(died_after_epoch_2, capsys):
    out, mark, stamp = died_after_epoch_2
    argv = ["stage", out, "--marker", mark, "--since", stamp, "--epochs", "3", "--resume-flag=--resume"]
    assert checkpoint.main(argv) == 0
    action, arg, _msg = capsys.readouterr().out.rstrip("\n").split("\t")
    assert (action, os.path.basename(arg)) == ("resume", "scaled_vfn_epoch_2.safetensors")
