"""Fleet safety on the emulator: the reaper (playbooks/reap.yml) destroys our forgotten instances and nothing else;
a host that fails the burn-in is destroyed, blocklisted and avoided by the next rent."""

import json
import re
import subprocess
import time

import pytest

from conftest import ROOT
from test_instance_lifecycle import guide_matches, live_instances, rent_task
from test_site import LABEL, Site, recap

FOREIGN = "someone-else-offline"
ORPHAN = "volt-x-orphan"
STUCK = "volt-x-stuck"


def rent(ansible, label, **overrides):
    runner, results = ansible.playbook([rent_task(label=label, **overrides)])
    assert runner.rc == 0, results
    return results["Rent"]["instance"]["id"]


def summary(output):
    (line,) = re.findall(r'"msg": "(reap: [^"]*)"', output)
    return line


def test_the_reaper_destroys_our_orphans_and_never_a_foreign_instance(ansible, emulator, ssh_keypair, tmp_path):
    orphan = rent(ansible, ORPHAN)
    foreign = rent(ansible, FOREIGN)
    emulator.preempt(orphan, kind="host_lost")
    emulator.preempt(foreign, kind="host_lost")
    emulator.set_faults(stuck_loading=1)
    stuck = rent(ansible, STUCK, wait=False)
    site = Site(tmp_path, emulator, ssh_keypair, campaign_reap_loading_timeout=1)
    site.env["ANSIBLE_CALLBACK_RESULT_FORMAT"] = "json"  # the summary on one line, as a cron mail shows it

    # Check mode lists what would go, why, and what it costs per hour now; it destroys nothing.
    planned = summary(site.play("playbooks/reap.yml", "--check"))
    assert planned.startswith("reap: would destroy 2 instance(s)"), planned
    assert "%s #%d: status offline" % (ORPHAN, orphan) in planned and "%s #%d: loading for" % (STUCK, stuck) in planned
    assert re.search(r"\$0\.\d+/h", planned) and "ignored 1 without the label prefix" in planned, planned
    assert {i["id"] for i in live_instances(emulator)} == {orphan, foreign, stuck}

    done = summary(site.play("playbooks/reap.yml"))
    assert done.startswith("reap: destroyed 2 instance(s)"), done
    assert [i["id"] for i in live_instances(emulator)] == [foreign], "the foreign instance must survive"

    # Nothing left of ours: a second run is a no-op, still cron-quiet.
    again = summary(site.play("playbooks/reap.yml"))
    assert again.startswith("reap: destroyed 0 instance(s)"), again


def test_a_host_that_fails_the_burn_in_is_destroyed_blocklisted_and_avoided(emulator, ssh_keypair, tmp_path):
    emulator.reset()
    # The emulator's containers have no GPU and this machine's cores: burn in what they can hold (RAM and disk).
    site = Site(tmp_path, emulator, ssh_keypair, campaign_burn_in=True, campaign_burn_in_checks=["ram", "disk"],
                vastai_min_ram_gb=1, vastai_disk_gb=20)
    emulator.set_faults(short_ram=1)  # the cheapest host gives its container 256 MB whatever its offer says

    failed = site.play("playbooks/rent.yml", expect_rc=2)
    (bad,) = emulator.state()["instances"]
    assert bad.get("destroyed") and live_instances(emulator) == [] and emulator.containers() == []
    assert "machine %d) failed the burn-in: RAM: 0.3 GB usable, 1 GB needed" % bad["machine_id"] in failed, failed
    (entry,) = json.loads((tmp_path / "blocklist.json").read_text())["machines"]
    assert entry["machine_id"] == bad["machine_id"] and entry["reason"].startswith("burn-in: RAM")
    assert entry["instance_id"] == bad["id"] and re.match(r"\d{4}-\d\d-\d\dT", entry["date"])
    assert "ansible-playbook voltx.vastai.rent" in failed and "playbooks/" not in failed
    # It was rented for the campaign: its ledger counts it, with what it cost.
    (casualty,) = json.loads((site.harvest / "campaign.json").read_text())["instances"]
    assert casualty["id"] == bad["id"] and casualty["dph"] == bad["dph_total"] > 0
    assert casualty["end_time"] >= casualty["start_time"] > 0

    site.play("playbooks/rent.yml")
    (good,) = live_instances(emulator)
    assert good["machine_id"] != bad["machine_id"]
    site.play("playbooks/harvest.yml")
    report = (site.harvest / "report" / "status.md").read_text()
    assert "- of which earlier instances of the campaign: $" in report and "(%d: " % bad["id"] in report, report
    # The instance found by its label on a later run is never judged again: it may hold the data by then.
    again = site.play("playbooks/rent.yml")
    assert recap(again)[LABEL] == dict(recap(again)[LABEL], changed=0, failed=0), again[-3000:]
    assert [i["id"] for i in live_instances(emulator)] == [good["id"]]
    emulator.reset()


def test_an_offer_whose_host_listing_ends_before_the_run_is_skipped(emulator, ssh_keypair, tmp_path):
    emulator.reset()
    cheapest = guide_matches()[0]
    assert cheapest["duration"] < 26 * 86400 < guide_matches()[1]["duration"], "the catalog changed"
    # 25 days of run plus a day of margin: the cheapest matching host's listing ends too soon.
    site = Site(tmp_path, emulator, ssh_keypair, campaign_run_hours=25 * 24, campaign_contract_margin_hours=24)
    site.play("playbooks/rent.yml")
    (rented,) = live_instances(emulator)
    assert rented["machine_id"] == guide_matches()[1]["machine_id"] != cheapest["machine_id"]
    emulator.reset()


@pytest.mark.parametrize("rank_by, machine_id", [(None, 39328), ("price", 39852)])
def test_the_rent_takes_the_most_work_per_dollar_unless_told_the_price(emulator, ssh_keypair, tmp_path, rank_by,
                                                                       machine_id):
    emulator.reset()
    # Hosts of 64+ cores and a small disk, without the cheapest match's machine (38411): the offer on machine 39328
    # gives the most DLPerf per dollar (dlperf_per_dphtotal), the one on 39852 costs the least
    # (tests/emulator/test_emulator.py checks the emulator's two orders).
    settings = dict(vastai_min_host_cpu_cores=64, vastai_min_disk_gb=20, vastai_disk_gb=20,
                    vastai_excluded_machines=[38411])
    if rank_by:
        settings["vastai_rank_by"] = rank_by
    Site(tmp_path, emulator, ssh_keypair, **settings).play("playbooks/rent.yml")
    (rented,) = live_instances(emulator)
    assert rented["machine_id"] == machine_id
    emulator.reset()


def test_the_budget_ceiling_destroys_the_instance_only_after_the_harvest(emulator, ssh_keypair, tmp_path):
    emulator.reset()
    site = Site(tmp_path, emulator, ssh_keypair, campaign_budget_usd=0.000001)
    site.play("playbooks/rent.yml")
    (instance,) = live_instances(emulator)
    # A tiny result, as the codebook job would leave it, written straight into the instance's container.
    log = "kmeans iteration 1 loss=1.5\n"
    (container,) = emulator.containers()
    subprocess.run(["docker", "exec", container, "sh", "-c", "mkdir -p /root/volt-x/logs && printf '%s' '" + log
                    + "' > /root/volt-x/logs/phase03.log"], check=True)

    site.env["ANSIBLE_CALLBACK_RESULT_FORMAT"] = "json"  # the status on one line, as it was written
    output = site.play("playbooks/harvest.yml", expect_rc=2)
    assert (site.harvest / "logs" / "phase03.log").read_text() == log
    # The status line's parts, one "; " between each, none left empty.
    (status,) = re.findall(r'"msg": "(no stage log yet[^"]*)"', output)
    assert "; ETA unknown; no GPU seen; disk " in status and "  " not in status and ";;" not in status, status
    assert live_instances(emulator) == [] and emulator.containers() == []
    assert "the ceiling comes before the next look (campaign_budget_check_interval_minutes 30): harvested, now " \
        "destroying" in output
    # The curriculum never ran: the harvest says so and exits non-zero, so that cron notices.
    assert "stopped the curriculum before it finished" in output and "instance %d" % instance["id"] in output
    assert output.index("TASK [voltx.vastai.harvest : Pull") < output.index("TASK [voltx.vastai.harvest : Destroy the instance]")


def test_the_budget_ceiling_holds_within_two_percent_with_a_harvest_every_interval(emulator, ssh_keypair, tmp_path):
    """Harvests as cron would run them, one after the other: the last one before the ceiling destroys the instance,
    so the emulator bills no more than the budget (2 % tolerance), and at most one interval's cost less."""
    emulator.reset()
    site = Site(tmp_path, emulator, ssh_keypair)
    site.play("playbooks/rent.yml")
    (instance,) = live_instances(emulator)
    interval_minutes = 2
    budget = round(instance["dph_total"] * 4 / 60, 6)  # four minutes of the instance's price
    settings = ("-e", "campaign_budget_usd=%s" % budget, "-e", "campaign_budget_check_interval_minutes=%s" % interval_minutes)
    looks = []  # (start, end) of each harvest, on the clock the emulator bills by
    for _look in range(30):
        started = time.time()
        run = subprocess.run(["ansible-playbook", "-e", "@%s" % site.vars_file, *settings, "playbooks/harvest.yml"],
                             cwd=ROOT, env=site.env, capture_output=True, text=True, timeout=600, check=False)
        looks.append((started, time.time()))
        if not live_instances(emulator):
            break
        assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-3000:]
    assert live_instances(emulator) == []
    assert run.returncode == 2 and "stopped the curriculum before it finished" in " ".join(run.stdout.split())
    billed = emulator.state()["ledger"]["total"]
    # The rule promises the ceiling when looks come at most an interval apart. Cron keeps that promise; here a slow
    # machine may not, so the time by which the last two looks (or the start and the only look) were further apart
    # than the interval is allowed on top, at the instance's price: no clock race, and a rule that waits for the
    # ceiling itself (harvests ~30 s apart, no look ahead) still fails by far more than 2 %.
    previous_look = looks[-2][0] if len(looks) > 1 else instance["start_date"]
    late_hours = max(0.0, looks[-1][1] - previous_look - interval_minutes * 60) / 3600
    assert billed <= budget * 1.02 + instance["dph_total"] * late_hours, (billed, budget, late_hours)
    assert billed >= (budget - instance["dph_total"] * interval_minutes / 60) * 0.98, (billed, budget)
