"""The guide's "Instance preempted mid-training", automated: playbooks/recover.yml after a host loss mid stage 2
continues on a new instance from the newest epoch, and a stopped instance continues on itself."""

import hashlib
import json
import time

import pytest

from test_site import LABEL, Site, wait_for_jobs

HOLD = "/root/hold-stage2"
FINALS = ("checkpoints/codebook_code.bin", "checkpoints/scaled_vfn_stage1.safetensors",
          "checkpoints/scaled_vfn_stage2.safetensors", "checkpoints/scaled_vfn.safetensors")


def stages(epochs):
    """The guide's curriculum with fewer epochs per stage."""
    data = ["data/code_training_combined.jsonl", "data/apps_introductory_train.jsonl",
            "data/apps_interview_train.jsonl", "data/apps_competition_train.jsonl"]
    outputs = ["checkpoints/scaled_vfn_stage1.safetensors", "checkpoints/scaled_vfn_stage2.safetensors",
               "checkpoints/scaled_vfn.safetensors"]
    return [{"name": "stage %d" % (i + 1), "data": data[:[1, 3, 4][i]], "lr": "1e-4", "warmup": 10,
             "epochs": n, "output": outputs[i], "log": "phase21_stage%d.log" % (i + 1)} for i, n in enumerate(epochs)]


def live(emulator):
    return [i for i in emulator.state()["instances"] if not i.get("destroyed")]


def wait_for_hold(site, instance, deadline_s=300):
    """The fixture waits after saving epoch 3 of stage 2 (the only stage that long) while HOLD exists."""
    until = time.monotonic() + deadline_s
    while time.monotonic() < until:
        out = site.ssh(instance, "cat volt-x/logs/phase21_stage2.log 2>/dev/null; test -f volt-x/logs/phase03.exit")
        if out.returncode == 0 and "holding after epoch 3" in out.stdout:
            return
        time.sleep(2)
    raise AssertionError("stage 2 never reached the hold after epoch 3")


@pytest.fixture
def held_campaign(emulator, ssh_keypair, tmp_path):
    """A campaign whose codebook and stage 1 are finished and harvested, held inside stage 2 after epoch 3."""
    emulator.reset()
    site = Site(tmp_path, emulator, ssh_keypair, campaign_stages=stages([2, 4, 2]),
                train_tmux_env={"VOLTX_STEP_MS": "20", "VOLTX_STEPS_PER_EPOCH": "3",
                                "VOLTX_HOLD_FILE": HOLD, "VOLTX_HOLD_AFTER_EPOCH": "3"})
    site.play("site.yml", "--skip-tags", "train")
    (instance,) = live(emulator)
    assert site.ssh(instance, "touch %s" % HOLD).returncode == 0
    site.play("playbooks/train.yml")
    wait_for_hold(site, instance)
    site.play("playbooks/harvest.yml")
    assert (site.harvest / "checkpoints" / "scaled_vfn_stage1.safetensors").stat().st_size > 0
    return site, instance


def finish_and_check(site, emulator, instance):
    wait_for_jobs(emulator, instance["id"], site.private_key, str(site.tmp / "known_hosts"))
    site.play("playbooks/harvest.yml")
    status = json.loads((site.harvest / "report" / "status.json").read_text())
    assert {job: state["exit_status"] for job, state in status["jobs"].items()} == {"phase03": 0, "phase21": 0}
    for path in FINALS:
        assert (site.harvest / path).stat().st_size > 0
    stage1_log = (site.harvest / "logs" / "phase21_stage1.log").read_text()
    assert stage1_log.count("=== STAGE 1 started") == 1, "a finished stage must not be trained again"
    return (site.harvest / "logs" / "phase21_stage2.log").read_text()


def test_host_lost_mid_stage_2_recovers_on_a_new_instance_from_the_newest_epoch(held_campaign, emulator):
    site, lost = held_campaign
    codebook = (site.harvest / "checkpoints" / "codebook_code.bin").read_bytes()
    emulator.preempt(lost["id"], kind="host_lost")

    site.play("playbooks/recover.yml")
    (replacement,) = live(emulator)
    assert replacement["id"] != lost["id"] and replacement["machine_id"] != lost["machine_id"]

    stage2_log = finish_and_check(site, emulator, replacement)
    # Epochs 1-3 were safe on the controller: the new instance goes on from epoch 3, nothing finished is lost.
    assert "epoch 3 of 4" in stage2_log and "resuming from" in stage2_log
    assert (site.harvest / "checkpoints" / "codebook_code.bin").read_bytes() == codebook, "Phase 0.3 ran again"
    ledger = emulator.state()["ledger"]["instances"]
    assert {str(lost["id"]), str(replacement["id"])} <= {str(i) for i in ledger}
    # The report's money covers the lost instance too, for all the time it existed.
    cost = json.loads((site.harvest / "report" / "status.json").read_text())["cost"]
    assert [e["id"] for e in cost["earlier_instances"]] == [lost["id"]]
    assert cost["spent_usd"] > cost["earlier_usd"] > 0
    site.play("playbooks/teardown.yml")
    assert live(emulator) == [] and emulator.containers() == []


def test_a_stopped_instance_recovers_on_itself(held_campaign, emulator):
    site, stopped = held_campaign
    emulator.preempt(stopped["id"], kind="stopped")

    site.play("playbooks/recover.yml")
    (instance,) = live(emulator)
    assert instance["id"] == stopped["id"]
    # The launcher ran from the onstart script the rent sent, as Vast.ai runs it when the container starts.
    relaunch = site.ssh(instance, "cat volt-x/logs/relaunch.log")
    assert relaunch.returncode == 0 and "phase21" in relaunch.stdout, relaunch
    stage2_log = finish_and_check(site, emulator, instance)
    assert "resuming from" in stage2_log
    site.play("playbooks/teardown.yml")
    assert live(emulator) == [] and LABEL not in json.dumps(live(emulator))


def test_a_second_campaign_under_the_same_label_never_counts_the_first_ones_results(emulator, ssh_keypair, tmp_path):
    """Issue #24: the default label again, the new instance stopped before its first harvest. The first campaign's
    finals on the controller are not the new instance's: the teardown refuses; both campaigns end up whole, apart."""
    emulator.reset()
    site = Site(tmp_path, emulator, ssh_keypair, campaign_stages=stages([2, 4, 2]),
                train_tmux_env={"VOLTX_STEP_MS": "20", "VOLTX_STEPS_PER_EPOCH": "3",
                                "VOLTX_HOLD_FILE": HOLD, "VOLTX_HOLD_AFTER_EPOCH": "3"})
    site.play("site.yml")
    (first,) = live(emulator)
    wait_for_jobs(emulator, first["id"], site.private_key, str(site.tmp / "known_hosts"))
    site.play("playbooks/teardown.yml")
    first_results = {path: (site.harvest / path).read_bytes() for path in FINALS}

    site.play("site.yml", "--skip-tags", "train")
    (second,) = live(emulator)
    assert site.ssh(second, "touch %s" % HOLD).returncode == 0
    site.play("playbooks/train.yml")
    wait_for_hold(site, second)  # its codebook, stage 1 and three epochs of stage 2 exist on the instance alone
    emulator.preempt(second["id"], kind="stopped")

    refused = site.play("playbooks/teardown.yml", expect_rc=2)
    assert "Refusing to destroy" in refused and str(second["id"]) in refused
    assert [i["id"] for i in live(emulator)] == [second["id"]]

    # Started again, it finishes; the teardown harvests it, then destroys it.
    site.play("playbooks/recover.yml")
    assert [i["id"] for i in live(emulator)] == [second["id"]]
    wait_for_jobs(emulator, second["id"], site.private_key, str(site.tmp / "known_hosts"))
    site.play("playbooks/teardown.yml")
    assert live(emulator) == []

    earlier = site.harvest / "earlier" / str(first["id"])
    assert {path: (earlier / path).read_bytes() for path in FINALS} == first_results
    for folder, instance in ((earlier, first), (site.harvest, second)):
        manifest = json.loads((folder / "manifest.json").read_text())
        assert manifest["instances"] == [str(instance["id"])]
        recorded = {f["path"]: f for f in manifest["files"]}
        for path in FINALS:
            assert recorded[path]["instances"] == [str(instance["id"])]
            assert recorded[path]["sha256"] == hashlib.sha256((folder / path).read_bytes()).hexdigest()
    # Each campaign's logs are its own: the second's stage 1 ran once, on the second instance, after the first's.
    logs = [(folder / "logs" / "phase21_stage1.log").read_text() for folder in (earlier, site.harvest)]
    assert [log.count("=== STAGE 1 started") for log in logs] == [1, 1] and logs[0] != logs[1]
