"""restore_plan: what a replacement instance gets back from the controller, read with the campaign's layout."""

import json
import os

import artifacts
from layout import campaign_defaults

DEFAULTS = campaign_defaults()


def layout(**changes):
    base = {"log_dir": DEFAULTS["campaign_log_dir"], "codebook_job": DEFAULTS["campaign_codebook_job"],
            "codebook_output": DEFAULTS["campaign_codebook_output"], "stages": DEFAULTS["campaign_stages"]}
    base.update(changes)
    return base


def put(dest, rel, data=b"x"):
    path = os.path.join(dest, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


def marker(dest, rel, status):
    put(dest, rel, json.dumps({"status": status}).encode())


def test_finished_codebook_and_stage_come_back_and_the_stage_in_flight_resumes_from_its_newest_epoch(tmp_path):
    dest = str(tmp_path)
    put(dest, "checkpoints/codebook_code.bin")
    marker(dest, "logs/phase03.exit", 0)
    put(dest, "checkpoints/scaled_vfn_stage1.safetensors")
    put(dest, "logs/phase21_stage1.log")
    marker(dest, "logs/phase21_stage1.exit", 0)
    put(dest, "logs/phase21_stage2.log")
    for epoch in (1, 3, 2):
        put(dest, "checkpoints/epochs/scaled_vfn_stage2/scaled_vfn_epoch_%d.safetensors" % epoch)

    plan = artifacts.restore_plan(dest, layout())

    assert [c["local"] for c in plan["copies"]] == [
        "checkpoints/codebook_code.bin", "logs/phase03.exit",
        "checkpoints/scaled_vfn_stage1.safetensors", "logs/phase21_stage1.log", "logs/phase21_stage1.exit",
        "logs/phase21_stage2.log"]
    assert plan["resume"] == {"local": "checkpoints/epochs/scaled_vfn_stage2/scaled_vfn_epoch_3.safetensors",
                              "remote": "checkpoints/scaled_vfn_epoch_3.safetensors",
                              "stamp": "phase21_stage2.started", "epoch": 3,
                              "stage_output": "checkpoints/scaled_vfn_stage2.safetensors"}


def test_a_failed_codebook_job_and_an_unfinished_first_stage_bring_back_nothing_but_its_log(tmp_path):
    dest = str(tmp_path)
    put(dest, "checkpoints/codebook_code.bin")
    marker(dest, "logs/phase03.exit", 1)
    put(dest, "logs/phase21_stage1.log")
    plan = artifacts.restore_plan(dest, layout())
    assert [c["local"] for c in plan["copies"]] == ["logs/phase21_stage1.log"]
    assert plan["resume"] is None


def test_renamed_logs_jobs_and_directories_are_what_it_looks_for(tmp_path):
    dest = str(tmp_path)
    renamed = layout(log_dir="journal", codebook_job="kmeans", codebook_output="out/codebook.bin",
                     stages=[{"log": "first.log", "output": "out/first.safetensors", "epochs": 2}])
    # The default names are present and must be ignored.
    put(dest, "checkpoints/codebook_code.bin")
    marker(dest, "logs/phase03.exit", 0)
    put(dest, "out/codebook.bin")
    marker(dest, "journal/kmeans.exit", 0)
    put(dest, "out/first.safetensors")
    put(dest, "journal/first.log")
    marker(dest, "journal/first.exit", 0)

    plan = artifacts.restore_plan(dest, renamed)

    assert [c["local"] for c in plan["copies"]] == [
        "out/codebook.bin", "journal/kmeans.exit", "out/first.safetensors", "journal/first.log", "journal/first.exit"]
    assert plan["resume"] is None
