"""artifacts.py uses train_tmux's checker: a codebook of unknown format is accepted; the fixture format is opt-in."""

import os

import pytest

import artifacts
import checkpoint


@pytest.fixture(autouse=True)
def _generic_codebook(monkeypatch):
    monkeypatch.setattr(artifacts, "CODEBOOK", {"codebook_format": "generic", "codebook_size": 0})
    monkeypatch.setattr(checkpoint.time, "sleep", lambda _s: None)  # the instance-side second look, instantly


def instance(tmp_path, data=b"\x01" * 2048):
    root = tmp_path / "volt-x"
    (root / "checkpoints").mkdir(parents=True)
    (root / "checkpoints" / "codebook_code.bin").write_bytes(data)
    return str(root)


def test_artifacts_has_no_checker_of_its_own():
    assert artifacts.Invalid is checkpoint.Invalid
    assert not hasattr(artifacts, "check_codebook") and not hasattr(artifacts, "check_safetensors")


def test_probe_accepts_a_headerless_codebook_by_default(tmp_path):
    entry = artifacts.describe(instance(tmp_path), "checkpoints/codebook_code.bin")
    assert (entry["valid"], entry["kind"], entry["size"]) == (True, "codebook", 2048)


def test_probe_refuses_it_in_the_fixture_format_or_at_another_size(tmp_path, monkeypatch):
    root = instance(tmp_path)
    monkeypatch.setitem(artifacts.CODEBOOK, "codebook_format", "voltx-fixture")
    entry = artifacts.describe(root, "checkpoints/codebook_code.bin")
    assert not entry["valid"] and "VXCB" in entry["error"]
    monkeypatch.setitem(artifacts.CODEBOOK, "codebook_format", "generic")
    monkeypatch.setitem(artifacts.CODEBOOK, "codebook_size", 4096)
    entry = artifacts.describe(root, "checkpoints/codebook_code.bin")
    assert not entry["valid"] and "2048 bytes, 4096 expected" in entry["error"]


def test_settle_verifies_the_pulled_headerless_codebook_as_a_final_artifact(tmp_path):
    root, dest = instance(tmp_path), str(tmp_path / "dest")
    probe = {"files": [artifacts.describe(root, "checkpoints/codebook_code.bin")]}
    plan = artifacts.plan(dest, probe)
    (item,) = plan["pull"]
    os.makedirs(os.path.dirname(os.path.join(dest, item["tmp"])), exist_ok=True)
    with open(os.path.join(root, item["remote"]), "rb") as src, open(os.path.join(dest, item["tmp"]), "wb") as dst:
        dst.write(src.read())
    result = artifacts.settle(dest, plan, ["checkpoints/codebook_code.bin"], 0, probe)
    assert result["missing_finals"] == [] and result["problems"] == []
    assert [v["path"] for v in result["verified_finals"]] == ["checkpoints/codebook_code.bin"]


def test_plan_limited_to_patterns_leaves_the_other_files_alone(tmp_path):
    """The monitor pulls logs only: a checkpoint missing locally, or one still being written, is neither pulled
    nor reported; the codebook playbook pulls the codebook alone."""
    root = instance(tmp_path)
    os.makedirs(os.path.join(root, "logs"))
    with open(os.path.join(root, "logs", "phase21_stage1.log"), "w") as log:
        log.write("epoch 1/10 loss=0.5\n")
    with open(os.path.join(root, "checkpoints", "scaled_vfn_stage1.safetensors"), "wb") as partial:
        partial.write(b"\x00\x01")  # a stage output being written: no valid header yet
    probe = {"files": [artifacts.describe(root, rel) for rel in (
        "checkpoints/codebook_code.bin", "checkpoints/scaled_vfn_stage1.safetensors", "logs/phase21_stage1.log")]}
    dest = str(tmp_path / "dest")
    assert [p["remote"] for p in artifacts.plan(dest, probe)["pull"]] == [
        "checkpoints/codebook_code.bin", "logs/phase21_stage1.log"]
    assert len(artifacts.plan(dest, probe)["problems"]) == 1
    logs_only = artifacts.plan(dest, probe, ["logs/*.log", "logs/*.exit"])
    assert [p["remote"] for p in logs_only["pull"]] == ["logs/phase21_stage1.log"] and logs_only["problems"] == []
    codebook_only = artifacts.plan(dest, probe, ["checkpoints/codebook_code.bin"])
    assert [p["remote"] for p in codebook_only["pull"]] == ["checkpoints/codebook_code.bin"]
