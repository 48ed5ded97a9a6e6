"""offer_info, instance_info, ssh_key and the VastModule base, with a fake client."""

from __future__ import annotations

import json

import pytest

from ansible_collections.voltx.vastai.plugins.module_utils._base import VastModule
from ansible_collections.voltx.vastai.plugins.module_utils._client import VastAuthError
from ansible_collections.voltx.vastai.plugins.modules import instance_info, offer_info, ssh_key

from vast_fakes import ED, FakeModule, ModuleExit, ModuleFail, offer

KEY = "f" * 64


def run(module_mod, cls, vast, params, check_mode=False):
    module = FakeModule(module_mod.argument_spec(), params, check_mode=check_mode)
    with pytest.raises((ModuleExit, ModuleFail)) as info:
        cls(module, client=vast).execute()
    exc = info.value
    return ("ok" if isinstance(exc, ModuleExit) else "failed"), exc.result


# -- offer_info ----------------------------------------------------------------------------------

def test_offer_info_ranks_rechecks_and_returns_query(vast):
    vast.offers = [offer(1, 0.19), offer(2, 0.15), offer(3, 0.5), offer(4, 0.1, reliability=0.5)]
    kind, result = run(offer_info, offer_info.VastOfferInfo, vast,
                       dict(gpu_name="RTX_5090", max_dph=0.2, min_reliability=0.95))
    assert kind == "ok" and result["changed"] is False
    assert [o["id"] for o in result["offers"]] == [2, 1]
    assert sorted(r["id"] for r in result["rejected"]) == [3, 4]
    assert result["query"]["gpu_name"] == {"eq": "RTX 5090"}
    assert result["query"] == vast.calls[0][1]
    assert "selected" not in result


def test_offer_info_select(vast):
    vast.offers = [offer(1, 0.19), offer(2, 0.15)]
    kind, result = run(offer_info, offer_info.VastOfferInfo, vast, dict(select="[].{id: id, price: dph_total}"))
    assert result["selected"] == [{"id": 2, "price": 0.15}, {"id": 1, "price": 0.19}]


@pytest.mark.parametrize("params,needle", [
    (dict(select="[[["), "select: invalid JMESPath"),
    (dict(query={"gpu_nmae": {"eq": 1}}), "query: unknown offer field 'gpu_nmae'"),
    (dict(max_dph=-0.5), "max_dph: must be greater than 0"),
    (dict(request_timeout=0.0), "request_timeout: must be greater than 0"),
    (dict(api_url="console.vast.ai"), "api_url: must start with http"),
])
def test_offer_info_bad_input_before_request(vast, params, needle):
    kind, result = run(offer_info, offer_info.VastOfferInfo, vast, params)
    assert kind == "failed" and needle in result["msg"] and vast.calls == []


# -- instance_info -------------------------------------------------------------------------------

def test_instance_info_filters(vast):
    vast._new_instance(1, {"label": "a"})
    vast._new_instance(2, {"label": "b"})
    vast.instances[502]["actual_status"] = "running"
    kind, result = run(instance_info, instance_info.VastInstanceInfo, vast, {})
    assert [i["id"] for i in result["instances"]] == [501, 502]
    kind, result = run(instance_info, instance_info.VastInstanceInfo, vast, dict(label="a"))
    assert [i["id"] for i in result["instances"]] == [501]
    kind, result = run(instance_info, instance_info.VastInstanceInfo, vast, dict(statuses=["running"]))
    assert [i["id"] for i in result["instances"]] == [502]
    kind, result = run(instance_info, instance_info.VastInstanceInfo, vast, dict(id=999))
    assert result["instances"] == []
    assert result["changed"] is False


# -- ssh_key --------------------------------------------------------------------------------------

def test_ssh_key_present_idempotent_and_absent(vast):
    kind, result = run(ssh_key, ssh_key.VastSSHKey, vast, dict(key=ED + " me"))
    assert kind == "ok" and result["changed"] is True and result["ssh_key"]["id"] == 1
    kind, result = run(ssh_key, ssh_key.VastSSHKey, vast, dict(key=ED + " other-comment"))
    assert result["changed"] is False and result["ssh_key"]["id"] == 1
    kind, result = run(ssh_key, ssh_key.VastSSHKey, vast, dict(key=ED, state="absent"), check_mode=True)
    assert result["changed"] is True and vast.keys
    kind, result = run(ssh_key, ssh_key.VastSSHKey, vast, dict(key=ED, state="absent"))
    assert result["changed"] is True and not vast.keys
    kind, result = run(ssh_key, ssh_key.VastSSHKey, vast, dict(key=ED, state="absent"))
    assert result["changed"] is False and result["ssh_key"] == {}


def test_ssh_key_check_mode_adds_nothing(vast):
    kind, result = run(ssh_key, ssh_key.VastSSHKey, vast, dict(key=ED), check_mode=True)
    assert result["changed"] is True and result["ssh_key"]["id"] is None
    assert "add_ssh_key" not in vast.verbs()


@pytest.mark.parametrize("key", ["rsa AAAA", "", "-----BEGIN OPENSSH PRIVATE KEY-----\nabc"])
def test_ssh_key_validation(vast, key):
    kind, result = run(ssh_key, ssh_key.VastSSHKey, vast, dict(key=key))
    assert kind == "failed" and result["msg"].startswith("key:") and vast.calls == []


# -- base: errors never carry the key --------------------------------------------------------------

def test_base_fail_scrubs_key(monkeypatch):
    def boom():
        raise VastAuthError("Vast.ai rejected the API key (HTTP 401: bad %s). Check VAST_API_KEY." % KEY,
                            status=401, error="auth_error")
    monkeypatch.setenv("VAST_API_KEY", KEY)  # the module's own lookup: the key is no option
    module = FakeModule(ssh_key.argument_spec(), dict(key=ED, api_url="http://127.0.0.1:9"))
    runner = ssh_key.VastSSHKey(module)
    runner.client.list_ssh_keys = boom
    with pytest.raises(ModuleFail) as info:
        runner.execute()
    result = info.value.result
    assert KEY not in json.dumps(result) and "HTTP 401: bad " in result["msg"]
    assert result["status"] == 401 and result["error_code"] == "auth_error"


def test_base_builds_client_from_params(tmp_path, monkeypatch):
    monkeypatch.delenv("VAST_API_KEY", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    (tmp_path / ".vast_api_key").write_text(KEY + "\n")
    module = FakeModule(ssh_key.argument_spec(), dict(key=ED, api_url="http://127.0.0.1:9", retries=2))
    base = VastModule(module)
    client = base.client
    assert client.api_key == KEY and client.api_url == "http://127.0.0.1:9"
    assert client.retry_policy.attempts == 3
    assert KEY in module.no_log_values


def test_base_missing_key_fails_cleanly(tmp_path, monkeypatch):
    monkeypatch.delenv("VAST_API_KEY", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    module = FakeModule(ssh_key.argument_spec(), dict(key=ED))
    with pytest.raises(ModuleFail) as err:
        VastModule(module).client  # pylint: disable=expression-not-assigned
    assert "No Vast.ai API key found" in err.value.result["msg"]
