"""The persistent machine blocklist: written by instance state=absent with blocklist_reason, honoured by every
offer search (instance, offer_info)."""

from __future__ import annotations

import json
import stat

import pytest

from ansible_collections.voltx.vastai.plugins.module_utils._blocklist import add_to_blocklist, load_blocklist
from ansible_collections.voltx.vastai.plugins.modules import offer_info

from test_instance_module import GUIDE, run
from vast_fakes import FakeModule, ModuleExit, offer


def test_a_destroy_with_a_reason_blocklists_the_machine_once(vast, clock, blocklist_file):
    vast._new_instance(11, {"label": "voltx-train"})
    kind, result, _m = run(vast, clock, dict(label="voltx-train", state="absent", blocklist_reason="burn-in: RAM"))
    assert kind == "ok" and result["destroyed"] == [501] and result["blocklisted"] == [7]
    (entry,) = json.loads(blocklist_file.read_text())["machines"]
    assert entry["machine_id"] == 7 and entry["reason"] == "burn-in: RAM" and entry["instance_id"] == 501
    assert stat.S_IMODE(blocklist_file.stat().st_mode) == 0o600
    assert add_to_blocklist(str(blocklist_file), 7, "again") is False and len(load_blocklist(str(blocklist_file))) == 1


def test_check_mode_writes_no_blocklist(vast, clock, blocklist_file):
    vast._new_instance(11, {"label": "voltx-train"})
    kind, result, _m = run(vast, clock, dict(label="voltx-train", state="absent", blocklist_reason="bad"),
                           check_mode=True)
    assert result["blocklisted"] == [7] and not blocklist_file.exists()


def test_the_rent_skips_a_blocklisted_machine(vast, clock, blocklist_file):
    add_to_blocklist(str(blocklist_file), 38411, "burn-in: GPU")
    vast.offers = [offer(11, 0.15, machine_id=38411), offer(12, 0.19, machine_id=38542)]
    kind, result, _m = run(vast, clock, dict(GUIDE))
    assert kind == "ok" and result["attempts"][0]["offer_id"] == 12
    assert result["query"]["machine_id"] == {"notin": ["38411"]}


def test_offer_info_skips_a_blocklisted_machine_and_keeps_the_users_own_exclusions(vast, blocklist_file):
    add_to_blocklist(str(blocklist_file), 38411, "burn-in: GPU")
    vast.offers = [offer(11, 0.15, machine_id=38411), offer(12, 0.19, machine_id=38542), offer(13, 0.2, machine_id=5)]
    module = FakeModule(offer_info.argument_spec(), dict(query={"machine_id": {"notin": [5]}}))
    with pytest.raises(ModuleExit) as info:
        offer_info.VastOfferInfo(module, client=vast).execute()
    assert [o["id"] for o in info.value.result["offers"]] == [12]
    assert info.value.result["query"]["machine_id"] == {"notin": ["5", "38411"]}


def test_a_malformed_blocklist_stops_the_rent_naming_the_file(vast, clock, blocklist_file):
    blocklist_file.write_text("[1, 2]")
    kind, result, _m = run(vast, clock, dict(GUIDE))
    assert kind == "failed" and str(blocklist_file) in result["msg"] and vast.calls == []
