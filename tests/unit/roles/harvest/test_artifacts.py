"""artifacts.py uses train_tmux's checker: a codebook of unknown format is accepted; the fixture format is opt-in."""

import json
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


def harvest(root, dest, instance_id):
    """What a harvest does on the controller: claim, plan, the downloads, settle."""
    artifacts.claim(dest, instance_id)
    probe = {"files": [artifacts.describe(root, "checkpoints/codebook_code.bin")]}
    plan = artifacts.plan(dest, probe)
    for item in plan["pull"]:
        os.makedirs(os.path.dirname(os.path.join(dest, item["tmp"])), exist_ok=True)
        with open(os.path.join(root, item["remote"]), "rb") as src, open(os.path.join(dest, item["tmp"]), "wb") as dst:
            dst.write(src.read())
    return artifacts.settle(dest, plan, ["checkpoints/codebook_code.bin"], 0, probe, instance_id)


def manifest(dest):
    with open(os.path.join(dest, "manifest.json")) as handle:
        return json.load(handle)


def test_a_new_campaign_moves_the_earlier_ones_results_aside_and_counts_only_its_own(tmp_path):
    dest, codebook = str(tmp_path / "dest"), "checkpoints/codebook_code.bin"
    harvest(instance(tmp_path / "a", b"\x01" * 2048), dest, "101")
    assert artifacts.safe(dest, "101", [codebook])["missing_finals"] == []

    # Instance 202, another campaign under the same label, stopped before its first harvest: nothing is its own.
    assert artifacts.claim(dest, "202")["moved"] == "earlier/101"
    (missing,) = artifacts.safe(dest, "202", [codebook])["missing_finals"]
    assert missing["path"] == codebook and "202" in missing["reason"]
    with open(os.path.join(dest, "earlier", "101", codebook), "rb") as handle:
        assert handle.read() == b"\x01" * 2048
    assert manifest(os.path.join(dest, "earlier", "101"))["instances"] == ["101"]

    # Its own codebook, even one equal to the earlier campaign's, is pulled from it and recorded as its own.
    result = harvest(instance(tmp_path / "b", b"\x01" * 2048), dest, "202")
    assert result["accepted"] == [codebook]
    assert [(f["path"], f["instances"]) for f in manifest(dest)["files"]] == [(codebook, ["202"])]
    assert artifacts.safe(dest, "202", [codebook])["missing_finals"] == []
    assert os.listdir(os.path.join(dest, "earlier")) == ["101"]


def test_a_replacement_instance_goes_on_with_the_campaign_it_is_restored_into(tmp_path):
    dest, codebook = str(tmp_path / "dest"), "checkpoints/codebook_code.bin"
    harvest(instance(tmp_path / "a"), dest, "101")
    assert artifacts.claim(dest, "202", join=True)["moved"] is None
    assert manifest(dest)["instances"] == ["101", "202"]
    # Restored onto 202 and not harvested from it yet: not 202's. Once harvested, the copy is both instances'.
    assert artifacts.safe(dest, "202", [codebook])["verified_finals"] == []
    assert harvest(instance(tmp_path / "b"), dest, "202")["accepted"] == []
    assert manifest(dest)["files"][0]["instances"] == ["101", "202"]
    assert artifacts.safe(dest, "202", [codebook])["missing_finals"] == []


def test_a_controller_copy_changed_after_its_harvest_is_not_safe(tmp_path):
    dest, codebook = str(tmp_path / "dest"), "checkpoints/codebook_code.bin"
    harvest(instance(tmp_path / "a"), dest, "101")
    with open(os.path.join(dest, codebook), "r+b") as handle:
        handle.write(b"\x00")
    (missing,) = artifacts.safe(dest, "101", [codebook])["missing_finals"]
    assert "changed" in missing["reason"]


def test_results_of_an_unrecorded_instance_are_moved_aside_not_adopted(tmp_path):
    """A results directory without instances in its manifest (an earlier version wrote it) is no instance's."""
    dest = tmp_path / "dest"
    (dest / "checkpoints").mkdir(parents=True)
    (dest / "checkpoints" / "codebook_code.bin").write_bytes(b"\x02" * 64)
    (dest / "manifest.json").write_text('{"files": []}\n')
    assert artifacts.claim(str(dest), "303")["moved"] == "earlier/unknown-instance"
    assert (dest / "earlier" / "unknown-instance" / "checkpoints" / "codebook_code.bin").read_bytes() == b"\x02" * 64
    assert manifest(str(dest)) == {"files": [], "instances": ["303"]}


def ledger(dest, *rows):
    with open(os.path.join(dest, "campaign.json"), "w") as handle:
        rows = [{"id": i, "dph": 0.2, "start_time": start, "end_time": end} for i, start, end in rows]
        json.dump({"instances": rows}, handle)


def ledger_ids(dest):
    with open(os.path.join(dest, "campaign.json")) as handle:
        return [row["id"] for row in json.load(handle)["instances"]]


def test_the_burn_in_casualties_before_the_first_harvest_stay_with_the_campaign_that_rented_them(tmp_path):
    dest = str(tmp_path / "dest")
    os.makedirs(dest)
    ledger(dest, (90, 1000.0, 1100.0))  # the burn-in destroyed 90, then rented 101
    assert artifacts.claim(dest, "101")["moved"] is None
    assert ledger_ids(dest) == [90] and manifest(dest)["instances"] == ["101"]

    # The campaign of 101 ends (destroyed at 5000); another campaign under the label loses 91 to its burn-in, rents 202.
    harvest(instance(tmp_path / "a"), dest, "101")
    ledger(dest, (90, 1000.0, 1100.0), (101, 1100.0, 5000.0), (91, 6000.0, 6100.0))
    assert artifacts.claim(dest, "202")["moved"] == "earlier/101"
    assert ledger_ids(os.path.join(dest, "earlier", "101")) == [90, 101]
    assert ledger_ids(dest) == [91]


def test_a_file_corrupt_on_the_instance_whose_verified_copy_is_on_the_controller_is_not_lost(tmp_path):
    dest, codebook = str(tmp_path / "dest"), "checkpoints/codebook_code.bin"
    root = instance(tmp_path / "a")
    harvest(root, dest, "101")
    with open(os.path.join(root, codebook), "wb"):
        pass  # emptied on the instance after the controller verified its copy
    probe = {"files": [artifacts.describe(root, codebook)]}
    assert not probe["files"][0]["valid"]
    result = artifacts.settle(dest, artifacts.plan(dest, probe), [codebook], 0, probe, "101")
    assert result["lost"] == [] and result["missing_finals"] == []
    assert [f["path"] for f in result["verified_finals"]] == [codebook]
    assert "corrupt on the instance" in result["problems"][0]["problem"]  # still reported, just not lost

    # Another instance under the same label has no verified copy of its own: its corrupt file is lost.
    artifacts.claim(dest, "202")
    result = artifacts.settle(dest, artifacts.plan(dest, probe), [codebook], 0, probe, "202")
    assert [line.split(" ")[0] for line in result["lost"]] == [codebook]
