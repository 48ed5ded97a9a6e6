"""The burn-in's throughput check on the emulator: real SSH between the controller and the rented container."""

import json
import re

from test_instance_lifecycle import live_instances
from test_site import Site


def test_a_host_too_slow_for_the_uploads_is_destroyed_and_blocklisted_and_a_fast_one_says_its_rates(
        emulator, ssh_keypair, tmp_path):
    emulator.reset()
    # Loopback moves gigabits; ask for more than any link gives, so the host fails on the rate it measured.
    site = Site(tmp_path, emulator, ssh_keypair, campaign_burn_in=True, campaign_burn_in_checks=["throughput"],
                campaign_burn_in_min_upload_mbit=10_000_000, campaign_burn_in_probe_mb=4)

    failed = " ".join(site.play("playbooks/rent.yml", expect_rc=2).split())  # as one line: the callback wraps
    (slow,) = emulator.state()["instances"]
    assert slow.get("destroyed") and live_instances(emulator) == [] and emulator.containers() == []
    measured = re.search(r"throughput: ([\d.]+) Mbit/s from the controller to the host, 10000000(\.0)? needed "
                         r"\(campaign_burn_in_min_upload_mbit\)", failed)
    assert measured and 0 < float(measured.group(1)) < 10_000_000, failed[-3000:]
    (entry,) = json.loads((tmp_path / "blocklist.json").read_text())["machines"]
    assert entry["machine_id"] == slow["machine_id"] and entry["reason"].startswith("burn-in: throughput")

    # At the shipped minimums the next host passes and the rent says what the link gives.
    passed = " ".join(site.play("playbooks/rent.yml", "-e", "campaign_burn_in_min_upload_mbit=20").split())
    (fast,) = live_instances(emulator)
    assert fast["machine_id"] != slow["machine_id"]
    rates = re.search(r"passed the burn-in \(throughput\)\. Throughput with the controller: ([\d.]+) Mbit/s up, "
                      r"([\d.]+) Mbit/s down", passed)
    assert rates and float(rates.group(1)) >= 20 and float(rates.group(2)) >= 20, passed[-3000:]
    emulator.reset()
