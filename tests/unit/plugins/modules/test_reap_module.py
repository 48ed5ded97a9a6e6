"""The reap module with a fake client: ownership by label prefix, reasons, check mode, the cron summary."""

from __future__ import annotations

import pytest

from ansible_collections.voltx.vastai.plugins.modules import reap

from vast_fakes import FakeModule, ModuleExit, ModuleFail

NOW = 100000.0


def instance(iid, label, status, age_s, dph=0.2):
    return {"id": iid, "label": label, "actual_status": status, "intended_status": "running", "dph_total": dph,
            "start_date": NOW - age_s, "machine_id": iid * 10, "_statuses": []}


def run(vast, params, check_mode=False):
    module = FakeModule(reap.argument_spec(), dict(dict(label_prefix="volt-x-"), **params), check_mode=check_mode)
    with pytest.raises((ModuleExit, ModuleFail)) as info:
        reap.VastReap(module, client=vast, clock=lambda: NOW).execute()
    return ("ok" if isinstance(info.value, ModuleExit) else "failed"), info.value.result


@pytest.fixture
def fleet(vast):
    for inst in (instance(1, "volt-x-a", "offline", 60), instance(2, "volt-x-b", "loading", 4000),
                 instance(3, "volt-x-c", "running", 10 * 3600), instance(4, "volt-x-d", "running", 60),
                 instance(5, "theirs", "offline", 60), instance(6, None, "exited", 99999),
                 instance(7, "VOLT-X-e", "offline", 60)):
        vast.instances[inst["id"]] = inst
    return vast


def test_check_mode_lists_reasons_and_price_and_destroys_nothing(fleet):
    kind, result = run(fleet, dict(loading_timeout=1800, ttl_hours=8), check_mode=True)
    assert kind == "ok" and result["changed"] is True
    assert [(e["id"], e["reason"]) for e in result["reaped"]] == [(1, "status"), (2, "stuck_loading"), (3, "ttl")]
    assert result["kept"] == [4] and result["foreign"] == 3
    assert result["dph_total"] == pytest.approx(0.6)
    assert result["summary"].startswith("reap: would destroy 3 instance(s)") and "$0.600/h" in result["summary"]
    assert "destroy_instance" not in fleet.verbs()


def test_destroys_only_owned_instances_and_only_the_ids_allowed(fleet):
    kind, result = run(fleet, dict(ttl_hours=8, only_ids=[1, 3, 5, 6]))
    assert kind == "ok" and [e["id"] for e in result["reaped"]] == [1, 3]
    assert sorted(fleet.instances) == [2, 4, 5, 6, 7]
    assert "\n" not in result["summary"]


def test_a_failed_destroy_exits_non_zero_naming_the_instance(fleet):
    def refuse(iid):
        raise reap.VastError("HTTP 500")
    fleet.destroy_instance = refuse
    kind, result = run(fleet, dict(only_ids=[1]))
    assert kind == "failed" and "Could not destroy Vast.ai instance(s) 1" in result["msg"]


def test_an_empty_prefix_is_refused_before_any_request(fleet):
    kind, result = run(fleet, dict(label_prefix=" "))
    assert kind == "failed" and result["msg"].startswith("label_prefix: must not be empty") and fleet.calls == []


def test_an_instance_whose_own_cost_reached_the_budget_is_reaped(vast):
    vast.instances[1] = instance(1, "volt-x-a", "running", 3 * 3600, dph=0.5)   # $1.50 so far
    vast.instances[2] = instance(2, "volt-x-b", "running", 3600, dph=0.5)       # $0.50 so far
    vast.instances[3] = instance(3, "theirs", "running", 99 * 3600, dph=9.0)
    kind, result = run(vast, dict(max_cost_usd=1.0), check_mode=True)
    assert [(e["id"], e["reason"]) for e in result["reaped"]] == [(1, "budget")]
    assert "cost $1.5000 (budget $1)" in result["summary"] and result["kept"] == [2]


@pytest.mark.parametrize("inventory, why", [
    ({"api_url": "https://console.vast.ai", "key_sha256": "0123"},
     "https://console.vast.ai, this play's API is http://emulator"),
    ({"api_url": "http://emulator", "key_sha256": "0123"}, "another API key than this play's (VAST_API_KEY"),
])
def test_another_account_than_the_inventory_s_is_refused_before_any_request(fleet, inventory, why):
    fleet.account = lambda: {"api_url": "http://emulator", "key_sha256": "4567"}
    kind, result = run(fleet, dict(ttl_hours=8, inventory_account=inventory))
    assert kind == "failed" and result["msg"].startswith("inventory_account: ") and why in result["msg"]
    assert "Nothing was listed or destroyed" in result["msg"] and fleet.verbs() == []
    assert sorted(fleet.instances) == [1, 2, 3, 4, 5, 6, 7]


def test_the_inventory_s_own_account_is_reaped(fleet):
    fleet.account = lambda: {"api_url": "http://emulator", "key_sha256": "4567"}
    kind, result = run(fleet, dict(only_ids=[1], inventory_account={"api_url": "http://emulator",
                                                                    "key_sha256": "4567"}))
    assert kind == "ok" and [e["id"] for e in result["reaped"]] == [1]
