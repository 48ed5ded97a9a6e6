"""artifacts.py prune-remote deletes files on the instance: only epoch checkpoints the controller holds with the
same sha256, never the newest KEEP of a stage, never anything else."""

import hashlib
import json
import os
import struct

import pytest

import artifacts

S1, S2 = "checkpoints/scaled_vfn_stage1.safetensors", "checkpoints/scaled_vfn_stage2.safetensors"


def safetensors(path, stage_output, fill):
    header = {"__metadata__": {"stage_output": stage_output},
              "w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}
    raw = json.dumps(header).encode()
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(raw)) + raw + bytes([fill]) * 8)


def sha(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


@pytest.fixture
def instance(tmp_path):
    """Stage 1 wrote epochs 1, 2, 10 (numeric order matters), stage 2 epochs 11, 12; plus outputs and a codebook."""
    root = tmp_path / "volt-x"
    for epoch, stage in ((1, S1), (2, S1), (10, S1), (11, S2), (12, S2)):
        safetensors(str(root / "checkpoints" / ("scaled_vfn_epoch_%d.safetensors" % epoch)), stage, epoch)
    safetensors(str(root / S1), S1, 0)
    (root / "checkpoints" / "codebook_code.bin").write_bytes(b"\x01" * 64)
    return str(root)


def held_by_controller(root, rels):
    return {rel: sha(os.path.join(root, rel)) for rel in rels}


def epochs_left(root):
    return sorted(int(n.split("_")[-1].split(".")[0]) for n in os.listdir(os.path.join(root, "checkpoints"))
                  if n.startswith("scaled_vfn_epoch_"))


ALL = ["checkpoints/scaled_vfn_epoch_%d.safetensors" % e for e in (1, 2, 10, 11, 12)] + [
    S1, "checkpoints/codebook_code.bin"]


def test_keeps_the_newest_keep_per_stage_and_deletes_older_verified_epochs(instance):
    removed = artifacts.prune_remote(instance, 1, held_by_controller(instance, ALL))
    assert sorted(removed) == ["checkpoints/scaled_vfn_epoch_%d.safetensors" % e for e in (1, 11, 2)]
    assert epochs_left(instance) == [10, 12]
    assert os.path.exists(os.path.join(instance, S1))
    assert os.path.exists(os.path.join(instance, "checkpoints", "codebook_code.bin"))


def test_keep_two_keeps_two_per_stage(instance):
    artifacts.prune_remote(instance, 2, held_by_controller(instance, ALL))
    assert epochs_left(instance) == [2, 10, 11, 12]


def test_an_epoch_the_controller_does_not_hold_is_kept(instance):
    held = held_by_controller(instance, ALL)
    del held["checkpoints/scaled_vfn_epoch_1.safetensors"]
    assert "checkpoints/scaled_vfn_epoch_1.safetensors" not in artifacts.prune_remote(instance, 1, held)
    assert epochs_left(instance) == [1, 10, 12]


def test_an_epoch_the_controller_holds_with_another_sha256_is_kept(instance):
    held = held_by_controller(instance, ALL)
    held["checkpoints/scaled_vfn_epoch_2.safetensors"] = hashlib.sha256(b"an older copy").hexdigest()
    artifacts.prune_remote(instance, 1, held)
    assert epochs_left(instance) == [2, 10, 12]


def test_keep_zero_deletes_nothing(instance):
    assert artifacts.prune_remote(instance, 0, held_by_controller(instance, ALL)) == []
    assert epochs_left(instance) == [1, 2, 10, 11, 12]


def test_the_prune_remote_command_reports_what_it_removed(instance, capsys):
    held = held_by_controller(instance, ALL)
    assert artifacts.main(["prune-remote", instance, "1", json.dumps(held)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["changed"] and len(out["removed"]) == 3
    assert artifacts.main(["prune-remote", instance, "1", json.dumps(held)]) == 0
    assert json.loads(capsys.readouterr().out) == {"changed": False, "removed": []}
