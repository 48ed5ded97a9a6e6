"""Every input a user gets wrong fails the pre-flight with a message naming the variable, before any rent request."""

import json

import pytest

from test_site import Site

BAD_INPUTS = {
    "stages": ({"campaign_stages": [{"name": "one", "data": ["data/code_training_combined.jsonl"], "lr": "1e-4",
                                     "warmup": 10, "epochs": "ten", "output": "checkpoints/x.safetensors",
                                     "log": "x.log"}]}, "epochs"),
    "streams": ({"data_sync_max_streams": "three"}, "data_sync_max_streams"),
    "local_files": ({"data_sync_local_files": {"checkpoints": {}, "stak_python": "/x/python_sample.jsonl"}},
                    "data_sync_local_files.stak_python"),
    "disk": ({"vastai_disk_gb": 1}, "vastai_disk_gb"),
    "gpu": ({"vastai_gpu_name": "RTX 9999"}, "vastai_gpu_name"),
    "image": ({"vastai_image": "nvidia/CUDA:12.8.0-devel-ubuntu22.04"}, "vastai_image"),
    "public_key": ({"vastai_ssh_public_key_file": "/nonexistent/id_ed25519.pub"}, "vastai_ssh_public_key_file"),
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
