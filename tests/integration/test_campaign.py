"""A campaign of three instances on the emulator (the inventory plugin's option instances): rented in parallel, each
prepared, trained, harvested and destroyed by the same playbooks with its own settings, budget and harvest directory.
"""

import json
import re
import shlex
import subprocess
import time

import yaml

from test_instance_lifecycle import live_instances
from test_readme import campaign_commands
from test_site import Site, recap, wait_for_jobs

BASE = "volt-x-lr1e4"  # the group_vars' curriculum, a budget of its own
FAST = "volt-x-lr3e4"  # another learning rate
CAPPED = "volt-x-capped"  # a curriculum of years on a host listed for weeks, and a budget its first harvest spends
LABELS = [BASE, FAST, CAPPED]


def stage(lr, epochs=2):
    return {"name": "all data (lr=%s)" % lr, "data": ["{{ campaign_data_dir }}/code_training_combined.jsonl"],
            "lr": lr, "warmup": 2, "epochs": epochs,
            "output": "{{ campaign_checkpoints_dir }}/scaled_vfn.safetensors", "log": "phase21_stage1.log"}


def campaign(site, folder, instances):
    """An inventory directory as a user writes one: the plugin file with the campaign, the settings in group_vars."""
    folder.mkdir()
    (folder / "group_vars").mkdir()
    # The settings move from --extra-vars (which beat host variables) to group_vars (which host variables beat).
    settings = json.loads(site.vars_file.read_text())
    settings.pop("harvest_dest")
    settings["campaign_stages"] = [stage("1e-4")]
    (folder / "group_vars" / "all.yml").write_text(yaml.safe_dump(settings))
    site.vars_file.write_text("{}")
    inventory = folder / "campaign.vastai.yml"
    inventory.write_text(yaml.safe_dump({"plugin": "voltx.vastai.vastai", "instances": instances}, sort_keys=False))
    return str(inventory)


def test_a_campaign_label_the_reaper_would_not_own_stops_the_rent_of_every_instance(emulator, ssh_keypair, tmp_path):
    emulator.reset()
    site = Site(tmp_path, emulator, ssh_keypair)
    inventory = campaign(site, tmp_path / "stray", [{"label": BASE}, {"label": "my-run"}])
    failed = site.play("-i", inventory, "playbooks/rent.yml", expect_rc=2)
    assert "The campaign's instance(s) my-run do not start with campaign_owner_label_prefix (volt-x-)" in failed
    assert emulator.state()["instances"] == []


def play(site, folder, command, expect_rc=0):
    """A command as the README writes it, from the inventory's directory, as a user runs it."""
    env = dict(site.env, ANSIBLE_PIPELINING="True")
    run = subprocess.run(shlex.split(command), cwd=str(folder), env=env, capture_output=True, text=True, timeout=1200,
                         check=False)
    with open(site.log, "a") as handle:
        handle.write("$ %s\n%s%s\n" % (command, run.stdout, run.stderr))
    assert run.returncode == expect_rc, run.stdout[-6000:] + run.stderr[-3000:]
    return run.stdout


def wait_for_epoch(site, instance, epoch, attempts=120):
    """The endless stage has begun its epoch `epoch`, so the report can estimate its finish."""
    for _attempt in range(attempts):
        if site.ssh(instance, "grep -q '^epoch %d/' volt-x/logs/phase21_stage1.log" % epoch).returncode == 0:
            return
        time.sleep(2)
    raise AssertionError("%s never reached epoch %d" % (instance["label"], epoch))


def test_a_three_instance_campaign_runs_in_parallel_with_its_overrides_and_leaves_nothing_running(
        emulator, ssh_keypair, tmp_path):
    emulator.reset()
    site = Site(tmp_path, emulator, ssh_keypair)
    folder = tmp_path / "campaign"
    inventory = campaign(site, folder, [
        {"label": BASE, "vars": {"campaign_budget_usd": 50}},
        {"label": FAST, "vars": {"campaign_stages": [stage("3e-4")]}},
        # 10^8 epochs of 3 s: whatever the pace, its ETA lies years past the host's listing (weeks at most).
        {"label": CAPPED, "vars": {"campaign_budget_usd": 0.000001, "campaign_stages": [stage("1e-4", 10 ** 8)],
                                   "train_tmux_env": {"VOLTX_STEP_MS": "1000", "VOLTX_STEPS_PER_EPOCH": "3"}}},
    ])
    site_cmd, harvest_cmd, teardown_cmd = campaign_commands()
    assert inventory.endswith(site_cmd.split("-i ")[1])

    first = play(site, folder, site_cmd)
    # One rent task for all three hosts, each renting its own instance: Ansible's forks, not a loop.
    rent = first.split("TASK [Rent the best matching offer", 1)[1].split("TASK [", 1)[0]
    assert sorted(re.findall(r"^changed: \[(\S+)\]", rent, flags=re.MULTILINE)) == sorted(LABELS), rent
    instances = {i["label"]: i for i in live_instances(emulator)}
    assert sorted(instances) == sorted(LABELS)
    assert len({i["machine_id"] for i in instances.values()}) == 3
    assert all(recap(first)[label]["failed"] == 0 for label in LABELS)

    # Each instance is rented once: a second rent finds all three by their labels.
    again = play(site, folder, site_cmd.replace("voltx.vastai.site", "voltx.vastai.rent"))
    assert all(recap(again)[label]["changed"] == 0 for label in LABELS), again[-3000:]
    assert sorted(i["id"] for i in live_instances(emulator)) == sorted(i["id"] for i in instances.values())

    for label in (BASE, FAST):
        wait_for_jobs(emulator, instances[label]["id"], site.private_key, str(tmp_path / "known_hosts"))
    wait_for_epoch(site, instances[CAPPED], 2)

    # Each harvest keeps its own ledger against its own budget: the capped instance's is spent, so its verified
    # harvest destroys it; the others go on billing under theirs. Its report warns that its host's listing ends
    # before its ETA; the finished ones' do not.
    harvested = " ".join(play(site, folder, harvest_cmd, expect_rc=2).split())
    assert sorted(i["label"] for i in live_instances(emulator)) == [BASE, FAST]
    assert re.search(r"budget: \$[0-9.]+ of \$50\.0 spent; at \$", harvested), harvested[-4000:]
    assert harvested.count("the ceiling comes before the next look") == 1, harvested[-4000:]
    assert set(re.findall(r"stopped the curriculum before it finished: (\S+)", harvested)) == {CAPPED}, harvested[-4000:]
    contract_end = time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime(instances[CAPPED]["end_date"]))
    warning = "WARNING: the host's contract ends %s" % contract_end
    assert harvested.count("WARNING: the host's contract ends") == harvested.count(warning) >= 1
    assert warning in (folder / "harvest" / CAPPED / "report" / "status.md").read_text()

    play(site, folder, teardown_cmd)
    assert live_instances(emulator) == [] and emulator.containers() == []
    ledger = emulator.state()["ledger"]["instances"]
    assert all(ledger[str(i["id"])]["destroyed"] for i in instances.values())

    # Every instance has its own harvest directory, with its own curriculum's learning rate.
    for label, lr in ((BASE, "1.0e-4"), (FAST, "3.0e-4"), (CAPPED, "1.0e-4")):
        log = (folder / "harvest" / label / "logs" / "phase21_stage1.log").read_text()
        assert re.search(r"\blr=%s\b" % re.escape(lr), log), (label, log[:400])
    for label in (BASE, FAST):
        results = folder / "harvest" / label
        assert (results / "checkpoints" / "scaled_vfn.safetensors").stat().st_size > 0
        status = json.loads((results / "report" / "status.json").read_text())
        assert status["jobs"]["phase21"]["exit_status"] == 0 and status["contract"]["warning"] is None, label
