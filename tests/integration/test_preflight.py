"""Every input a user gets wrong fails the pre-flight with a message naming the variable, before any rent request."""

import json
import os

import pytest

from test_site import Site

STAGE = {"name": "one", "data": ["data/code_training_combined.jsonl"], "lr": "1e-4", "warmup": 10, "epochs": 2,
         "output": "checkpoints/x.safetensors", "log": "x.log"}

BAD_INPUTS = {
    "stages": ({"campaign_stages": [dict(STAGE, epochs="ten")]}, "epochs"),
    "negative_epochs": ({"campaign_stages": [dict(STAGE, epochs=-3)]}, "campaign_stages"),
    "stage_key": ({"campaign_stages": [dict(STAGE, batchsize=8)]}, "batchsize"),
    "streams": ({"data_sync_max_streams": "three"}, "data_sync_max_streams"),
    "local_files": ({"data_sync_local_files": {"checkpoints": {}, "stak_python": "/x/python_sample.jsonl"}},
                    "data_sync_local_files.stak_python"),
    "disk": ({"vastai_disk_gb": 1}, "vastai_disk_gb"),
    "gpu": ({"vastai_gpu_name": "RTX 9999"}, "vastai_gpu_name"),
    "image": ({"vastai_image": "nvidia/CUDA:12.8.0-devel-ubuntu22.04"}, "vastai_image"),
    "public_key": ({"vastai_ssh_public_key_file": "/nonexistent/id_ed25519.pub"}, "vastai_ssh_public_key_file"),
    "rank_by": ({"vastai_rank_by": "dlperf"}, "vastai_rank_by"),
}


def rent_requests(emulator):
    return [r for r in emulator.state()["requests"] if r["method"] == "PUT" and "/asks/" in r["path"]]


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_fails_before_any_rent(case, emulator, ssh_keypair, tmp_path):
    override, variable = BAD_INPUTS[case]
    site = Site(tmp_path, emulator, ssh_keypair)
    before = len(rent_requests(emulator))
    output = site.play("site.yml", "-e", json.dumps(override), expect_rc=2)
    assert variable in output
    assert "Nothing was rented" in output or "nothing was rented" in output
    assert len(rent_requests(emulator)) == before, "a bad input must not reach PUT /asks/"


def test_a_number_given_with_e_is_used_as_a_number(emulator, ssh_keypair, tmp_path):
    """`-e name=30` gives the string '30': the disk check adds it up as 30 GB, and names it when it is too much."""
    site = Site(tmp_path, emulator, ssh_keypair)
    before = len(rent_requests(emulator))
    output = site.play("playbooks/preflight.yml", "-e", "campaign_build_disk_gb=30", "-e", "vastai_disk_gb=250")
    assert "_AnsibleTagged" not in output
    output = site.play("site.yml", "-e", "campaign_build_disk_gb=300", expect_rc=2)
    assert "campaign_build_disk_gb" in output and "Nothing was rented" in output
    assert "_AnsibleTagged" not in output
    output = site.play("site.yml", "-e", "campaign_build_disk_gb=thirty", expect_rc=2)
    assert "campaign_build_disk_gb" in output and "nothing was rented" in output.lower()
    assert len(rent_requests(emulator)) == before, "a bad input must not reach PUT /asks/"


def test_a_controller_without_rsync_fails_before_the_rent_when_the_source_is_pushed(emulator, ssh_keypair, tmp_path):
    """build_source local pushes the checkout with rsync from the controller: without rsync nothing is rented."""
    site = Site(tmp_path, emulator, ssh_keypair)
    # Every command of the PATH but rsync (ansible itself needs python and ssh).
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for directory in site.env["PATH"].split(os.pathsep):
        if os.path.isdir(directory):
            for name in os.listdir(directory):
                target = os.path.join(directory, name)
                if name != "rsync" and os.access(target, os.X_OK) and not (bin_dir / name).exists():
                    (bin_dir / name).symlink_to(target)
    site.env["PATH"] = str(bin_dir)
    before = len(rent_requests(emulator))
    output = site.play("site.yml", expect_rc=2)
    assert "rsync" in output and "build_source" in output
    assert "Nothing was rented" in output
    assert len(rent_requests(emulator)) == before, "a missing tool must not reach PUT /asks/"
