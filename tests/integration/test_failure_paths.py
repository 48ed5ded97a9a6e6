"""Money safety when things go wrong: harvest and teardown reach an instance in any state, or exit non-zero
naming it; a teardown that exits 0 leaves no instance billing."""

import hashlib
import json
import signal
import subprocess
import time

import pytest

from conftest import ROOT
from test_site import LABEL, Site

FINALS = ("checkpoints/codebook_code.bin", "checkpoints/scaled_vfn_stage1.safetensors",
          "checkpoints/scaled_vfn_stage2.safetensors", "checkpoints/scaled_vfn.safetensors")


def live_instances(emulator):
    return [i for i in emulator.state()["instances"] if not i.get("destroyed")]


def rent(site, emulator):
    emulator.reset()
    site.play("playbooks/rent.yml")
    (instance,) = live_instances(emulator)
    return instance


def make_unreachable(emulator, instance, how):
    if how == "paused":  # running to the API, but sshd never answers
        (name,) = [c for c in emulator.containers() if str(instance["id"]) in c]
        subprocess.run(["docker", "pause", name], check=True, capture_output=True)
    else:
        emulator.preempt(instance["id"], kind=how)


@pytest.mark.parametrize("how", ["stopped", "host_lost", "paused"])
def test_harvest_and_teardown_reach_an_instance_that_cannot_be_reached(how, emulator, ssh_keypair, tmp_path):
    site = Site(tmp_path, emulator, ssh_keypair)
    instance = rent(site, emulator)
    make_unreachable(emulator, instance, how)

    harvested = site.play("playbooks/harvest.yml", expect_rc=2)
    assert "Nothing was harvested" in harvested and str(instance["id"]) in harvested

    # Nothing of the run is on the controller: teardown refuses, naming what cannot be pulled, and keeps it.
    refused = site.play("playbooks/teardown.yml", expect_rc=2)
    assert "Refusing to destroy" in refused and "cannot be pulled" in refused
    assert [i["id"] for i in live_instances(emulator)] == [instance["id"]]

    # Files at the finals' names that no harvest took from this instance (another campaign's) are not its results.
    for path in FINALS:
        (site.harvest / path).parent.mkdir(parents=True, exist_ok=True)
        (site.harvest / path).write_bytes(b"verified earlier")
    refused = site.play("playbooks/teardown.yml", expect_rc=2)
    assert "Refusing to destroy" in refused and "no copy verified as instance %s's" % instance["id"] in refused

    # What an earlier harvest verified on the controller as this instance's (its manifest says so, and the sha256
    # still matches) is safe: the teardown destroys through the API alone and exits 0 with nothing left billing.
    manifest = json.loads((site.harvest / "manifest.json").read_text())
    assert manifest["instances"] == [str(instance["id"])]
    manifest["files"] = [{"path": path, "size": 16, "sha256": hashlib.sha256(b"verified earlier").hexdigest(),
                          "instances": [str(instance["id"])]} for path in FINALS]
    (site.harvest / "manifest.json").write_text(json.dumps(manifest))
    destroyed = site.play("playbooks/teardown.yml")
    assert "FORCED" not in destroyed
    assert live_instances(emulator) == []
    assert emulator.containers() == []


def test_a_rate_limited_inventory_is_never_a_silent_success(emulator, ssh_keypair, tmp_path):
    site = Site(tmp_path, emulator, ssh_keypair)
    instance = rent(site, emulator)
    emulator.set_faults(rate_limit=1000)
    try:
        for playbook in ("playbooks/harvest.yml", "playbooks/teardown.yml"):
            output = site.play(playbook, expect_rc=2)
            assert "no instance in the group 'training'" in output
    finally:
        emulator.set_faults(rate_limit=0)
    assert [i["id"] for i in live_instances(emulator)] == [instance["id"]]
    site.play("playbooks/teardown.yml", "-e", "harvest_teardown_force=true")
    assert live_instances(emulator) == []


def test_a_rate_limit_at_rent_start_says_the_api_could_not_be_read_and_rents_nothing(emulator, ssh_keypair, tmp_path):
    site = Site(tmp_path, emulator, ssh_keypair)
    emulator.reset()
    emulator.set_faults(rate_limit=1000)
    try:
        output = " ".join(site.play("playbooks/rent.yml", expect_rc=2).split())
    finally:
        emulator.set_faults(rate_limit=0)
    assert "The Vast.ai API could not be read" in output and "too frequent" in output
    assert "Nothing was rented" in output and "run again" in output
    assert "run with an inventory of the voltx.vastai.vastai plugin" not in output  # it was run with one
    assert emulator.state()["instances"] == []
    assert not [r for r in emulator.state()["requests"] if r["method"] == "PUT" and "/asks/" in r["path"]]


def test_ctrl_c_while_an_instance_loads_names_it_says_it_bills_and_how_to_stop_it(emulator, ssh_keypair, tmp_path):
    site = Site(tmp_path, emulator, ssh_keypair)
    emulator.reset()
    emulator.set_faults(boot_delay=600)  # loading until the interrupt
    rent_run = subprocess.Popen(["ansible-playbook", "-e", "@%s" % site.vars_file, "playbooks/rent.yml"], cwd=ROOT,
                                env=site.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        followed = None
        deadline = time.monotonic() + 300
        while followed is None and rent_run.poll() is None and time.monotonic() < deadline:
            state = emulator.state()
            looked_at = {r["path"] for r in state["requests"] if r["method"] == "GET"}
            followed = next((i for i in state["instances"] if not i["destroyed"]
                             and "/api/v0/instances/%d/" % i["id"] in looked_at), None)
            time.sleep(0.2)  # between two polls of the state, not a wait for anything
        assert followed is not None, "no instance was rented and followed"
        rent_run.send_signal(signal.SIGINT)
        output = rent_run.communicate(timeout=120)[0]
    finally:
        if rent_run.poll() is None:
            rent_run.kill()
        emulator.set_faults(boot_delay=0)
    assert rent_run.returncode != 0
    output = " ".join(output.split())
    assert "Interrupted while renting: instance %d (label '%s') exists and bills" % (followed["id"], LABEL) in output
    assert "ansible localhost -m voltx.vastai.instance -a 'label=%s state=absent'" % LABEL in output
    assert [i["id"] for i in live_instances(emulator)] == [followed["id"]]
    emulator.reset()


def test_plays_that_need_ssh_skip_a_stopped_instance_with_a_message(emulator, ssh_keypair, tmp_path):
    site = Site(tmp_path, emulator, ssh_keypair)
    instance = rent(site, emulator)
    emulator.preempt(instance["id"], kind="stopped")
    output = site.play("playbooks/verify.yml")
    assert "is exited, not running: skipped here" in output
    assert LABEL in output
    # What to run next, as an installed collection's user runs it.
    assert "Recover onto a new instance with ansible-playbook voltx.vastai.recover" in " ".join(output.split())
    site.play("playbooks/teardown.yml", "-e", "harvest_teardown_force=true")
    assert live_instances(emulator) == []


def test_a_failure_after_the_rent_names_the_instance_says_it_bills_and_how_to_stop_it(emulator, ssh_keypair, tmp_path):
    site = Site(tmp_path, emulator, ssh_keypair)
    instance = rent(site, emulator)
    # Nothing was built or uploaded: verify fails on the rented instance.
    output = site.play("playbooks/verify.yml", expect_rc=2)
    assert "Vast.ai instance %d" % instance["id"] in output
    assert "rented and billing" in output
    assert "ansible-playbook voltx.vastai.teardown -i " in output


def test_a_limit_that_leaves_no_instance_is_never_a_silent_success(emulator, ssh_keypair, tmp_path):
    site = Site(tmp_path, emulator, ssh_keypair)
    rent(site, emulator)
    # A second inventory holds a machine of the user's own; --limit to it leaves no instance to verify.
    extra = tmp_path / "workstation.ini"
    extra.write_text("workstation ansible_connection=local\n")
    output = site.play("playbooks/verify.yml", "-i", "inventories/vastai.yml", "-i", str(extra),
                       "--limit", "workstation", expect_rc=2)
    assert "--limit workstation leaves none of the instances in the group 'training'" in output
    assert LABEL in output
