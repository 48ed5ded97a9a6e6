"""The instance module's decisions, driven with a fake client and a fake clock."""

from __future__ import annotations

import json

import pytest
from ansible.module_utils.testing import patch_module_args

from ansible_collections.voltx.vastai.plugins.module_utils._client import VastError
from ansible_collections.voltx.vastai.plugins.modules import instance as mod

from vast_fakes import ED, FakeModule, ModuleExit, ModuleFail, offer

GUIDE = dict(label="voltx-train", image="nvidia/cuda:12.8.0-devel-ubuntu22.04", disk_gb=250, gpu_name="RTX 5090",
             num_gpus=1, min_cpu_cores=128, min_ram_gb=64, min_cuda=12.8, max_dph=0.2, min_reliability=0.95,
             poll_interval=5.0)


def run(vast, clock, params, check_mode=False, probe=lambda host, port: True):
    module = FakeModule(mod.argument_spec(), params, check_mode=check_mode)
    runner = mod.VastInstance(module, probe=probe, sleep=clock.sleep, clock=clock, client=vast)
    with pytest.raises((ModuleExit, ModuleFail)) as info:
        runner.execute()
    exc = info.value
    return ("ok" if isinstance(exc, ModuleExit) else "failed"), exc.result, module


def test_rents_cheapest_and_waits_for_ssh(vast, clock):
    vast.offers = [offer(11, 0.19), offer(12, 0.15), offer(13, 0.5)]
    probes = []
    kind, result, _m = run(vast, clock, dict(GUIDE), probe=lambda h, p: probes.append((h, p)) or True)
    assert kind == "ok", result
    assert result["changed"] is True
    assert [a["outcome"] for a in result["attempts"]] == ["rented"]
    assert result["attempts"][0]["offer_id"] == 12
    inst = result["instance"]
    assert inst["label"] == "voltx-train" and inst["status"] == "running" and inst["ssh_user"] == "root"
    assert (inst["ssh_host"], inst["ssh_port"]) == ("203.0.113.7", 40000 + inst["id"])
    assert probes == [("203.0.113.7", 40000 + inst["id"])]
    create = [c for c in vast.calls if c[0] == "create_instance"][0]
    assert create[2]["disk"] == 250.0 and create[2]["runtype"] == "ssh_direc ssh_proxy"
    assert create[2]["cancel_unavail"] is True and create[2]["label"] == "voltx-train"
    query = [c for c in vast.calls if c[0] == "search_offers"][0][1]
    assert query["disk_space"] == {"gte": "250"} and query["allocated_storage"] == 250.0
    assert "k" * 64 not in json.dumps(result)


def test_second_run_rents_nothing(vast, clock):
    vast.offers = [offer(11, 0.19)]
    run(vast, clock, dict(GUIDE))
    vast.calls = []
    kind, result, _m = run(vast, clock, dict(GUIDE))
    assert kind == "ok" and result["changed"] is False
    assert "create_instance" not in vast.verbs() and "search_offers" not in vast.verbs()
    assert result["instance"]["label"] == "voltx-train"


def test_two_instances_with_label_fail_with_ids(vast, clock):
    vast.offers = [offer(11, 0.19), offer(12, 0.19)]
    vast._new_instance(11, {"label": "voltx-train"})
    vast._new_instance(12, {"label": "voltx-train"})
    kind, result, _m = run(vast, clock, dict(GUIDE))
    assert kind == "failed"
    assert "501" in result["msg"] and "502" in result["msg"]
    assert "create_instance" not in vast.verbs()


def test_offer_gone_then_next(vast, clock):
    vast.offers = [offer(11, 0.10), offer(12, 0.15)]
    vast.create_behaviour[11] = ["gone"]
    kind, result, _m = run(vast, clock, dict(GUIDE))
    assert kind == "ok"
    assert [(a["offer_id"], a["outcome"]) for a in result["attempts"]] == [(11, "offer_gone"), (12, "rented")]


def test_over_price_contract_destroyed_then_next(vast, clock):
    vast.offers = [offer(11, 0.10), offer(12, 0.15)]
    vast.contract_price[11] = 0.30
    kind, result, _m = run(vast, clock, dict(GUIDE))
    assert kind == "ok"
    assert [a["outcome"] for a in result["attempts"]] == ["over_price_destroyed", "rented"]
    assert result["attempts"][0]["contract_dph"] == 0.30
    destroyed = [c[1] for c in vast.calls if c[0] == "destroy_instance"]
    assert destroyed == [result["attempts"][0]["instance_id"]]
    assert result["instance"]["dph_total"] <= 0.2


def test_stuck_loading_destroyed_then_next(vast, clock):
    vast.offers = [offer(11, 0.10), offer(12, 0.15)]
    vast.statuses[11] = ["loading"] * 1000
    params = dict(GUIDE, loading_timeout=60, wait_timeout=1800)
    kind, result, _m = run(vast, clock, params)
    assert kind == "ok"
    assert [a["outcome"] for a in result["attempts"]] == ["stuck_loading_destroyed", "rented"]
    assert result["attempts"][0]["instance_id"] not in vast.instances
    assert max(clock.sleeps) <= 5.0


def test_exited_instance_destroyed_then_next(vast, clock):
    vast.offers = [offer(11, 0.10), offer(12, 0.15)]
    vast.statuses[11] = ["loading", "exited"]
    kind, result, _m = run(vast, clock, dict(GUIDE))
    assert kind == "ok"
    assert [a["outcome"] for a in result["attempts"]] == ["failed_destroyed", "rented"]


PULL_ERROR = ("Error response from daemon: manifest for nvidia/cuda:12.8.0-devel-ubuntu2204 not found: "
              "manifest unknown: manifest unknown")


def test_an_image_that_cannot_be_pulled_is_rented_once_and_named(vast, clock):
    vast.offers = [offer(11, 0.10), offer(12, 0.15)]
    vast.statuses[11] = ["created"]
    vast.status_msgs[11] = PULL_ERROR
    image = "nvidia/cuda:12.8.0-devel-ubuntu2204"
    kind, result, _m = run(vast, clock, dict(GUIDE, image=image))
    assert kind == "failed"
    (iid,) = [call[1] for call in vast.calls if call[0] == "destroy_instance"]
    assert [c[1] for c in vast.calls if c[0] == "create_instance"] == [11]
    assert image in result["msg"] and PULL_ERROR in result["msg"] and "Instance %d was destroyed" % iid in result["msg"]
    assert "Relax the filters" not in result["msg"]
    assert result["instance_id"] == iid and vast.instances == {}
    assert [(a["outcome"], a["status_msg"]) for a in result["attempts"]] == [
        ("image_pull_failed_destroyed", PULL_ERROR)]


def test_a_given_up_instance_that_cannot_be_destroyed_is_named(vast, clock):
    vast.offers = [offer(11, 0.10), offer(12, 0.15)]
    vast.statuses[11] = ["loading", "exited"]

    def refuse(iid):
        raise VastError("Vast.ai API error on DELETE (HTTP 500): boom", status=500)
    vast.destroy_instance = refuse
    kind, result, _m = run(vast, clock, dict(GUIDE))
    assert kind == "failed"
    (iid,) = vast.instances
    assert "instance %d" % iid in result["msg"] and "may still be billing" in result["msg"]
    assert result["instance_id"] == iid and "create_instance" in vast.verbs()
    assert [c[1] for c in vast.calls if c[0] == "create_instance"] == [11]


def test_a_pull_that_fails_on_the_host_tries_the_next_offer(vast, clock):
    vast.offers = [offer(11, 0.10), offer(12, 0.15)]
    vast.statuses[11] = ["created"]
    vast.status_msgs[11] = ("Error response from daemon: Get https://registry-1.docker.io/v2/: net/http: "
                            "TLS handshake timeout")
    kind, result, _m = run(vast, clock, dict(GUIDE))
    assert kind == "ok"
    assert [a["outcome"] for a in result["attempts"]] == ["failed_destroyed", "rented"]


def test_all_attempts_fail_reports_every_attempt(vast, clock):
    vast.offers = [offer(i, 0.1) for i in (11, 12, 13, 14)]
    for oid in (11, 12, 13, 14):
        vast.create_behaviour[oid] = ["gone"]
    kind, result, _m = run(vast, clock, dict(GUIDE, max_attempts=3))
    assert kind == "failed"
    assert [a["offer_id"] for a in result["attempts"]] == [11, 12, 13]
    assert "after 3 attempt(s)" in result["msg"] and "offer 11: offer_gone" in result["msg"]
    assert len([c for c in vast.calls if c[0] == "create_instance"]) == 3


def test_wait_timeout_total_bounds(vast, clock):
    vast.offers = [offer(11, 0.10), offer(12, 0.15)]
    vast.statuses[11] = ["loading"] * 1000
    kind, result, _m = run(vast, clock, dict(GUIDE, loading_timeout=600, wait_timeout=100))
    assert kind == "failed"
    assert [a["outcome"] for a in result["attempts"]] == ["wait_timeout_destroyed"]
    assert "wait_timeout" in result["msg"]
    assert not vast.instances
    assert result["changed"] is True


def test_ssh_must_answer(vast, clock):
    vast.offers = [offer(11, 0.10)]
    answers = iter([False, False, True])
    kind, result, _m = run(vast, clock, dict(GUIDE), probe=lambda h, p: next(answers))
    assert kind == "ok" and result["instance"]["status"] == "running"
    assert len([c for c in vast.calls if c[0] == "get_instance"]) == 4  # loading, running x3


def test_transport_failure_at_create_finds_label_no_second_rent(vast, clock):
    vast.offers = [offer(11, 0.10), offer(12, 0.15)]
    vast.create_behaviour[11] = ["created_then_lost"]
    kind, result, _m = run(vast, clock, dict(GUIDE))
    assert kind == "ok"
    assert len([c for c in vast.calls if c[0] == "create_instance"]) == 1
    assert len(vast.instances) == 1
    assert [a["outcome"] for a in result["attempts"]] == ["rented"]
    verbs = vast.verbs()
    assert verbs.index("create_instance") < len(verbs) - 1
    assert verbs[verbs.index("create_instance") + 1] == "find_instances_by_label"


def test_transport_failure_not_created_moves_on(vast, clock):
    vast.offers = [offer(11, 0.10), offer(12, 0.15)]
    vast.create_behaviour[11] = ["lost"]
    kind, result, _m = run(vast, clock, dict(GUIDE))
    assert kind == "ok"
    assert [a["outcome"] for a in result["attempts"]] == ["create_failed_not_found", "rented"]
    assert len(vast.instances) == 1


def test_an_outage_at_create_fails_at_once_saying_so_and_rents_nothing(vast, clock):
    vast.offers = [offer(11, 0.10), offer(12, 0.15)]
    vast.create_behaviour[11] = ["unavailable"]
    kind, result, _m = run(vast, clock, dict(GUIDE))
    assert kind == "failed"
    assert "Vast.ai was unavailable" in result["msg"] and "Nothing was rented" in result["msg"]
    assert "run again later" in result["msg"] and "Relax the filters" not in result["msg"]
    assert [c[1] for c in vast.calls if c[0] == "create_instance"] == [11]  # no other offer, no long look-up
    assert vast.instances == {}


def test_an_interrupt_while_an_instance_loads_names_it_and_how_to_destroy_it(vast, clock):
    vast.offers = [offer(11, 0.10)]
    vast.get_errors = [KeyboardInterrupt()]  # Ctrl-C while the module follows the new instance
    kind, result, _m = run(vast, clock, dict(GUIDE))
    assert kind == "failed" and result["interrupted"] is True
    (iid,) = list(vast.instances)
    assert "Interrupted while renting: instance %d (label %r) exists and bills" % (iid, GUIDE["label"]) in result["msg"]
    assert "state=absent" in result["msg"]
    assert "destroy_instance" not in vast.verbs()  # told about, not destroyed behind the user's back


def test_unexpected_api_error_fails_with_attempts(vast, clock):
    vast.offers = [offer(11, 0.10)]

    def boom(offer_id, body):
        raise VastError("Vast.ai API error on PUT /api/v0/asks/11/ (HTTP 400/invalid_args): bad image", status=400)
    vast.create_instance = boom
    kind, result, _m = run(vast, clock, dict(GUIDE))
    assert kind == "failed" and "bad image" in result["msg"]


def test_client_side_recheck_never_rents_bad_offer(vast, clock):
    vast.offers = [offer(11, 0.25), offer(12, 0.19, gpu_name="RTX 4090")]
    kind, result, _m = run(vast, clock, dict(GUIDE))
    assert kind == "failed"
    assert "create_instance" not in vast.verbs()
    assert "No Vast.ai offer matches" in result["msg"]


def test_check_mode_reports_offer_and_changes_nothing(vast, clock):
    vast.offers = [offer(11, 0.19), offer(12, 0.15)]
    kind, result, _m = run(vast, clock, dict(GUIDE, ssh_public_key=ED), check_mode=True)
    assert kind == "ok" and result["changed"] is True
    assert result["offer"]["id"] == 12
    assert result["attempts"] == [{"offer_id": 12, "outcome": "would_rent", "dph_total": 0.15, "instance_id": None}]
    assert set(vast.verbs()) <= {"find_instances_by_label", "search_offers", "list_ssh_keys"}


def test_ssh_key_added_and_attached(vast, clock):
    vast.offers = [offer(11, 0.19)]
    kind, result, _m = run(vast, clock, dict(GUIDE, ssh_public_key=ED + " me@laptop"))
    assert kind == "ok" and result["ssh_key_added"] is True
    iid = result["instance"]["id"]
    assert ("attach_ssh_key", iid, ED + " me@laptop") in vast.calls
    assert vast.verbs().index("add_ssh_key") < vast.verbs().index("create_instance")


def test_ssh_key_present_not_added(vast, clock):
    vast.offers = [offer(11, 0.19)]
    vast.keys = [{"id": 1, "key": ED + " other-comment"}]
    kind, result, _m = run(vast, clock, dict(GUIDE, ssh_public_key=ED))
    assert kind == "ok" and result["ssh_key_added"] is False
    assert "add_ssh_key" not in vast.verbs()


def test_absent_destroys_all_with_label(vast, clock):
    vast._new_instance(11, {"label": "voltx-train"})
    vast._new_instance(12, {"label": "voltx-train"})
    vast._new_instance(13, {"label": "other"})
    kind, result, _m = run(vast, clock, dict(label="voltx-train", state="absent"))
    assert kind == "ok" and result["changed"] is True and result["destroyed"] == [501, 502]
    assert list(vast.instances) == [503]
    kind, result, _m = run(vast, clock, dict(label="voltx-train", state="absent"))
    assert result["changed"] is False and result["destroyed"] == []


def test_absent_check_mode(vast, clock):
    vast._new_instance(11, {"label": "voltx-train"})
    kind, result, _m = run(vast, clock, dict(label="voltx-train", state="absent"), check_mode=True)
    assert result["changed"] is True and result["destroyed"] == [501]
    assert 501 in vast.instances


def test_stop_and_start_existing(vast, clock):
    vast.offers = [offer(11, 0.19)]
    run(vast, clock, dict(GUIDE))
    kind, result, _m = run(vast, clock, dict(label="voltx-train", state="stopped"))
    assert kind == "ok" and result["changed"] is True
    assert ("set_instance_state", 501, "stopped") in vast.calls
    kind, result, _m = run(vast, clock, dict(label="voltx-train", state="stopped"))
    assert result["changed"] is False
    kind, result, _m = run(vast, clock, dict(label="voltx-train", state="running"))
    assert kind == "ok" and result["changed"] is True and result["instance"]["status"] == "running"
    kind, result, _m = run(vast, clock, dict(label="voltx-train", state="running"))
    assert result["changed"] is False


def test_stop_check_mode(vast, clock):
    vast._new_instance(11, {"label": "voltx-train"})
    vast.instances[501]["actual_status"] = "running"
    kind, result, _m = run(vast, clock, dict(label="voltx-train", state="stopped"), check_mode=True)
    assert result["changed"] is True and "set_instance_state" not in vast.verbs()


def test_no_wait_returns_after_create(vast, clock):
    vast.offers = [offer(11, 0.19)]
    kind, result, _m = run(vast, clock, dict(GUIDE, wait=False), probe=lambda h, p: pytest.fail("no probe"))
    assert kind == "ok" and result["attempts"][0]["outcome"] == "rented"


def test_explicit_offer_id_skips_search(vast, clock):
    vast.offers = [offer(77, 0.19)]
    params = dict(label="x", image="img", offer_id=77, max_dph=0.2)
    kind, result, _m = run(vast, clock, params)
    assert kind == "ok" and "search_offers" not in vast.verbs()
    assert result["attempts"][0]["offer_id"] == 77


@pytest.mark.parametrize("over,needle", [
    (dict(label=""), "label: must not be empty"),
    (dict(label=" x"), "label: ' x' is not a label this collection rents under: use 1 to 64 letters"),
    (dict(label="volt-x-z/../../../escape"), "label: 'volt-x-z/../../../escape' is not a label"),
    (dict(label="volt-x-{{ lookup('pipe', 'id') }}"), "is not a label this collection rents under"),
    (dict(label="volt-x-$(id)"), "is not a label this collection rents under"),
    (dict(max_dph=-1.0), "max_dph: must be greater than 0"),
    (dict(disk_gb=4), "disk_gb: must be at least 8"),
    (dict(onstart="x" * 4049), "onstart: must be at most 4048"),
    (dict(query={"gpu_nmae": {"eq": "x"}}), "query: unknown offer field 'gpu_nmae'"),
    (dict(order=["nope"]), "order: unknown offer field"),
    (dict(ssh_public_key="hello"), "ssh_public_key:"),
    (dict(bid_price=0.1), "bid_price: is only valid with rental_type=interruptible"),
    (dict(wait_timeout=0), "wait_timeout: must be at least 1"),
    (dict(image=" "), "image: ' ' is empty"),
    (dict(image="nvidia/CUDA:12.8.0-devel"), "image: 'nvidia/CUDA:12.8.0-devel' has upper case"),
    (dict(image="nvidia/cuda 12.8"), "image: 'nvidia/cuda 12.8' contains whitespace"),
])
def test_bad_input_fails_before_any_request(vast, clock, over, needle):
    kind, result, _m = run(vast, clock, dict(GUIDE, **over))
    assert kind == "failed"
    assert needle in result["msg"]
    assert vast.calls == []


@pytest.mark.parametrize("over,needle", [
    (dict(rental_type="interruptible"), "rental_type is interruptible but all of the following are missing: bid_price"),
    (dict(offer_id=5), "parameters are mutually exclusive: offer_id|gpu_name, offer_id|num_gpus"),
])
def test_argument_spec_refuses_options_that_contradict(capsys, over, needle):
    """The module as Ansible runs it: the argument spec refuses these before the module asks anything of Vast."""
    with patch_module_args(dict(GUIDE, **over)), pytest.raises(SystemExit):
        mod.main()
    assert needle in json.loads(capsys.readouterr().out)["msg"]


def test_image_required_to_rent(vast, clock):
    params = dict(GUIDE)
    params.pop("image")
    vast.offers = [offer(11, 0.19)]
    kind, result, _m = run(vast, clock, params)
    assert kind == "failed" and "image: is required" in result["msg"]
    assert "create_instance" not in vast.verbs()


def test_a_create_still_in_progress_is_found_not_rented_twice(vast, clock):
    vast.offers = [offer(11, 0.10), offer(12, 0.15)]
    vast.create_behaviour[11] = ["created_late"]
    kind, result, _m = run(vast, clock, dict(GUIDE))
    assert kind == "ok", result
    assert vast.verbs().count("create_instance") == 1
    assert len(vast.instances) == 1 and result["instance"]["id"] in vast.instances


def test_rate_limited_polls_after_a_create_keep_following_the_instance(vast, clock):
    vast.offers = [offer(11, 0.10)]
    vast.get_errors = [mod.VastRateLimitError("API requests too frequent", status=429)] * 3
    kind, result, _m = run(vast, clock, dict(GUIDE))
    assert kind == "ok", result
    assert result["instance"]["status"] == "running" and len(vast.instances) == 1


def test_an_instance_that_cannot_be_followed_is_destroyed_and_named(vast, clock):
    vast.offers = [offer(11, 0.10)]
    vast.get_errors = [VastError("Vast.ai said something unexpected", status=500)]
    kind, result, _m = run(vast, clock, dict(GUIDE))
    assert kind == "failed"
    (iid,) = [c[1] for c in vast.calls if c[0] == "destroy_instance"]
    assert str(iid) in result["msg"] and "destroyed" in result["msg"]
    assert vast.instances == {}


def test_rate_limited_creates_say_so_instead_of_blaming_the_filters(vast, clock):
    vast.offers = [offer(11, 0.10)]
    vast.create_behaviour[11] = ["rate_limited"] * 10
    kind, result, _m = run(vast, clock, dict(GUIDE))
    assert kind == "failed"
    assert "rate-limited" in result["msg"] and "Relax" not in result["msg"]
    assert vast.instances == {}
