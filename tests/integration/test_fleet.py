"""Fleet safety on the emulator: the reaper (playbooks/reap.yml) destroys our forgotten instances and nothing else."""

import re

from test_instance_lifecycle import live_instances, rent_task
from test_site import Site

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
