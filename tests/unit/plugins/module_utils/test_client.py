"""VastClient: auth, key resolution, retries, error mapping, paging. Fake HTTP, no network."""

from __future__ import annotations

import json
import os

import pytest
import requests

from ansible_collections.voltx.vastai.plugins.module_utils import _client as c
from ansible_collections.voltx.vastai.plugins.module_utils._client import (
    RetryPolicy,
    VastAuthError,
    VastClient,
    VastConfigError,
    VastError,
    VastNotFoundError,
    VastOfferUnavailableError,
    VastRateLimitError,
    VastTransportError,
    error_from_response,
    extract_message,
    is_offer_unavailable,
    parse_retry_after,
    resolve_api_key,
)

KEY = "0123456789abcdef" * 4


class FakeResponse:
    def __init__(self, status=200, body=None, text=None, headers=None):
        self.status_code = status
        if text is None:
            text = "" if body is None else json.dumps(body)
        self.text = text
        self.headers = headers or {}


class FakeSession:
    """Replays scripted replies; records every call."""

    def __init__(self, *replies):
        self.replies = list(replies)
        self.calls = []

    def request(self, method, url, params=None, json=None, headers=None, timeout=None):  # pylint: disable=redefined-outer-name
        self.calls.append(dict(method=method, url=url, params=params, json=json, headers=headers, timeout=timeout))
        if not self.replies:
            raise AssertionError("unexpected request %s %s" % (method, url))
        reply = self.replies.pop(0)
        if isinstance(reply, Exception):
            raise reply
        if callable(reply):
            return reply(method, url, params, json)
        return reply


def make_client(*replies, **kwargs):
    session = FakeSession(*replies)
    sleeps = []
    kwargs.setdefault("retry_policy", RetryPolicy(attempts=5, jitter=0))
    client = VastClient(api_url="http://vast.test", session=session, sleep=sleeps.append,
                        environ={"VAST_API_KEY": KEY}, **kwargs)
    return client, session, sleeps


# -- api key resolution ---------------------------------------------------------------------------

def write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as handle:
        handle.write(text)


def test_key_env_before_files(tmp_path):
    write(str(tmp_path / ".config" / "vastai" / "vast_api_key"), "xdg")
    key, source = resolve_api_key(environ={"VAST_API_KEY": " env \n"}, home=str(tmp_path))
    assert key == "env"
    assert "VAST_API_KEY" in source


def test_key_xdg_default_config_dir(tmp_path):
    write(str(tmp_path / ".config" / "vastai" / "vast_api_key"), "  xdgkey\n")
    write(str(tmp_path / ".vast_api_key"), "legacy")
    key, source = resolve_api_key(environ={}, home=str(tmp_path))
    assert key == "xdgkey"
    assert source.endswith(os.path.join(".config", "vastai", "vast_api_key"))


def test_key_xdg_config_home_env(tmp_path):
    write(str(tmp_path / "cfg" / "vastai" / "vast_api_key"), "custom")
    write(str(tmp_path / ".config" / "vastai" / "vast_api_key"), "default")
    key, _src = resolve_api_key(environ={"XDG_CONFIG_HOME": str(tmp_path / "cfg")}, home=str(tmp_path))
    assert key == "custom"


def test_key_legacy_file(tmp_path):
    write(str(tmp_path / ".vast_api_key"), "legacy\n")
    assert resolve_api_key(environ={}, home=str(tmp_path)) == ("legacy", str(tmp_path / ".vast_api_key"))


def test_key_empty_values_skipped(tmp_path):
    write(str(tmp_path / ".config" / "vastai" / "vast_api_key"), "   \n")
    write(str(tmp_path / ".vast_api_key"), "legacy")
    assert resolve_api_key(environ={"VAST_API_KEY": "  "}, home=str(tmp_path))[0] == "legacy"


def test_key_tfa_file_before_api_key_file_under_xdg_config_home(tmp_path):
    write(str(tmp_path / "cfg" / "vastai" / "vast_tfa_key"), " session\n")
    write(str(tmp_path / "cfg" / "vastai" / "vast_api_key"), "long-lived")
    write(str(tmp_path / ".config" / "vastai" / "vast_tfa_key"), "default-dir")
    key, source = resolve_api_key(environ={"XDG_CONFIG_HOME": str(tmp_path / "cfg")}, home=str(tmp_path))
    assert (key, source) == ("session", str(tmp_path / "cfg" / "vastai" / "vast_tfa_key"))
    assert resolve_api_key(environ={"VAST_API_KEY": "env"}, home=str(tmp_path))[0] == "env"


def test_key_empty_tfa_file_falls_back_to_api_key_file(tmp_path):
    write(str(tmp_path / ".config" / "vastai" / "vast_tfa_key"), "\n")
    write(str(tmp_path / ".config" / "vastai" / "vast_api_key"), "long-lived")
    assert resolve_api_key(environ={}, home=str(tmp_path))[0] == "long-lived"


def test_tfa_key_sent_as_bearer_and_kept_out_of_errors(tmp_path):
    write(str(tmp_path / ".config" / "vastai" / "vast_tfa_key"), KEY)
    session = FakeSession(FakeResponse(500, {"msg": "boom %s" % KEY}))
    client = VastClient(api_url="http://vast.test", session=session, environ={}, home=str(tmp_path))
    with pytest.raises(VastError) as err:
        client.current_user()
    assert session.calls[0]["headers"]["Authorization"] == "Bearer " + KEY
    assert KEY not in str(err.value) and KEY not in json.dumps(err.value.body)
    assert KEY not in client.api_key_source


TFA_KEY = "fedcba9876543210" * 4


@pytest.mark.parametrize("expired", [
    FakeResponse(404, {"msg": "Session expired. Please log in again."}),
    FakeResponse(401, {"success": False, "error": "auth_error", "msg": "Invalid user key"}),
])
def test_an_expired_tfa_session_gives_way_once_to_the_api_key_file(tmp_path, expired):
    write(str(tmp_path / ".config" / "vastai" / "vast_tfa_key"), TFA_KEY)
    write(str(tmp_path / ".config" / "vastai" / "vast_api_key"), KEY)
    session = FakeSession(expired, FakeResponse(200, {"id": 1}), expired)
    client = VastClient(api_url="http://vast.test", session=session, environ={}, home=str(tmp_path))
    assert client.secrets() == [TFA_KEY, KEY]
    assert client.current_user() == {"id": 1}
    assert [call["headers"]["Authorization"] for call in session.calls] == ["Bearer " + TFA_KEY, "Bearer " + KEY]
    assert client.api_key_source == str(tmp_path / ".config" / "vastai" / "vast_api_key")
    with pytest.raises(VastError) as err:  # the API key file's key is not replaced in turn
        client.current_user()
    assert len(session.calls) == 3 and TFA_KEY not in str(err.value) and KEY not in str(err.value)


def test_no_fallback_for_a_key_that_is_not_a_tfa_session(tmp_path):
    write(str(tmp_path / ".config" / "vastai" / "vast_api_key"), "other")
    session = FakeSession(FakeResponse(401, {"msg": "Invalid user key"}))
    client = VastClient(api_url="http://vast.test", session=session, environ={"VAST_API_KEY": KEY},
                        home=str(tmp_path))
    with pytest.raises(VastAuthError):
        client.current_user()
    assert len(session.calls) == 1


def test_key_missing_names_places(tmp_path):
    with pytest.raises(VastConfigError) as err:
        resolve_api_key(environ={}, home=str(tmp_path))
    msg = str(err.value)
    assert "VAST_API_KEY" in msg
    assert str(tmp_path / ".vast_api_key") in msg
    assert os.path.join(".config", "vastai", "vast_api_key") in msg
    assert os.path.join(".config", "vastai", "vast_tfa_key") in msg


def test_api_url_resolution():
    assert c.resolve_api_url(None, environ={}) == "https://console.vast.ai"
    assert c.resolve_api_url(None, environ={"VAST_API_URL": "http://127.0.0.1:8080/"}) == "http://127.0.0.1:8080"
    assert c.resolve_api_url("http://x:1", environ={"VAST_API_URL": "http://y"}) == "http://x:1"
    with pytest.raises(VastConfigError):
        c.resolve_api_url("console.vast.ai", environ={})


# -- auth header, URL ----------------------------------------------------------------------------

def test_bearer_header_only_and_no_key_in_url():
    client, session, _sleeps = make_client(FakeResponse(200, {"id": 1, "api_key": KEY, "email": "a@b"}))
    user = client.current_user()
    call = session.calls[0]
    assert call["headers"]["Authorization"] == "Bearer " + KEY
    assert call["url"] == "http://vast.test/api/v0/users/current"
    assert KEY not in json.dumps(call["params"])
    assert "api_key" not in user  # secrets dropped from returned data
    assert call["timeout"] == 30.0


def test_path_prefix():
    client, session, _sleeps = make_client(FakeResponse(200, {}))
    client.request("GET", "/bundles/")
    assert session.calls[0]["url"] == "http://vast.test/api/v0/bundles/"


# -- retry policy -----------------------------------------------------------------------------------

def test_backoff_growth_without_jitter():
    policy = RetryPolicy(attempts=6, base_delay=1.0, factor=2.0, max_delay=10.0, jitter=0)
    assert list(policy.delays()) == [1.0, 2.0, 4.0, 8.0, 10.0]


def test_jitter_bounds():
    low = RetryPolicy(attempts=3, base_delay=2.0, jitter=0.25, rng=lambda: 0.0)
    high = RetryPolicy(attempts=3, base_delay=2.0, jitter=0.25, rng=lambda: 0.999999)
    assert list(low.delays()) == [1.5, 3.0]
    assert all(abs(a - b) < 1e-4 for a, b in zip(high.delays(), [2.5, 5.0]))
    real = RetryPolicy(attempts=50, base_delay=1.0, factor=1.0, jitter=0.25)
    assert all(0.75 <= d <= 1.25 for d in real.delays())


def test_attempts_one_means_no_delay():
    assert list(RetryPolicy(attempts=1).delays()) == []
    with pytest.raises(VastConfigError):
        RetryPolicy(attempts=0)


def test_429_three_times_then_success():
    rl = FakeResponse(429, text="API requests too frequent")
    client, session, sleeps = make_client(rl, rl, rl, FakeResponse(200, {"offers": [{"id": 1}]}))
    assert client.search_offers({}) == [{"id": 1}]
    assert len(session.calls) == 4
    assert sleeps == [1.0, 2.0, 4.0]


def test_retry_after_honoured():
    client, _s, sleeps = make_client(FakeResponse(429, {"detail": "slow down"}, headers={"Retry-After": "7"}),
                                     FakeResponse(200, {"success": True}))
    client.set_instance_state(5, "stopped")
    assert sleeps == [7.0]


def test_retry_after_too_long_gives_up():
    client, session, sleeps = make_client(FakeResponse(429, {"detail": "slow"}, headers={"Retry-After": "120"}))
    with pytest.raises(VastRateLimitError) as err:
        client.list_ssh_keys()
    assert len(session.calls) == 1 and sleeps == []
    assert "slow" in str(err.value)


def test_parse_retry_after():
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after(None) is None
    assert parse_retry_after("garbage") is None
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:10 GMT", now=1445412480.0) == 10.0


def test_retries_exhausted_raise_rate_limit():
    rl = FakeResponse(429, {"error": "rate_limit_exceeded", "msg": "API requests too frequent endpoint threshold=3.0"})
    client, session, sleeps = make_client(*([rl] * 5))
    with pytest.raises(VastRateLimitError) as err:
        client.destroy_instance(9)
    assert len(session.calls) == 5 and len(sleeps) == 4
    assert "threshold=3.0" in str(err.value)


def test_search_quota_never_retried():
    reply = FakeResponse(429, {"error": "search_quota_exceeded", "msg": "daily quota"},
                         headers={"X-RateLimit-Reset": "1800000000"})
    client, session, sleeps = make_client(reply)
    with pytest.raises(VastRateLimitError) as err:
        client.search_offers({})
    assert len(session.calls) == 1 and sleeps == []
    assert err.value.error == "search_quota_exceeded"
    assert "1800000000" in str(err.value)


@pytest.mark.parametrize("status", [502, 503, 504])
def test_gateway_errors_retried(status):
    client, session, sleeps = make_client(FakeResponse(status, text="<html>bad gateway</html>"),
                                          FakeResponse(200, {"instances": None}))
    assert client.get_instance(3) is None
    assert len(session.calls) == 2 and sleeps == [1.0]


def test_500_not_retried():
    client, session, _sleeps = make_client(FakeResponse(500, {"msg": "boom"}))
    with pytest.raises(VastError) as err:
        client.list_instances()
    assert len(session.calls) == 1
    assert "boom" in str(err.value)


def test_transport_errors_retried_then_raised():
    exc = requests.exceptions.ConnectionError("Connection refused")
    client, session, sleeps = make_client(*([exc] * 5))
    with pytest.raises(VastTransportError) as err:
        client.get_instance(1)
    assert len(session.calls) == 5 and len(sleeps) == 4
    assert err.value.maybe_created is False


def test_timeout_retried_then_success():
    client, session, _sleeps = make_client(requests.exceptions.ReadTimeout("read timed out"),
                                           FakeResponse(200, {"instances": {"id": 1}}))
    assert client.get_instance(1)["id"] == 1
    assert len(session.calls) == 2


NO_INSTANCE = FakeResponse(200, {"instances": [], "next_token": None})


def test_create_through_an_outage_looks_the_label_up_before_each_try_and_gives_up_in_seconds():
    client, session, sleeps = make_client(*[FakeResponse(503, text="unavailable"), NO_INSTANCE] * 5)
    with pytest.raises(VastTransportError) as err:
        client.create_instance(42, {"image": "x", "label": "volt-x-a"})
    assert [call["method"] for call in session.calls] == ["PUT", "GET"] * 5
    assert sleeps == [1.0, 2.0, 4.0, 8.0]
    assert err.value.unavailable is True and err.value.maybe_created is False


def test_create_answered_503_that_took_is_found_by_its_label_not_sent_again():
    client, session, _sleeps = make_client(
        FakeResponse(503, text="unavailable"),
        FakeResponse(200, {"instances": [{"id": 9, "label": "volt-x-a"}], "next_token": None}))
    assert client.create_instance(42, {"image": "x", "label": "volt-x-a"}) == 9
    assert [call["method"] for call in session.calls] == ["PUT", "GET"]


def test_create_answered_503_whose_look_up_fails_may_have_been_made():
    client, session, _sleeps = make_client(FakeResponse(503, text="unavailable"),
                                           *[FakeResponse(503, text="unavailable")] * 5)
    with pytest.raises(VastTransportError) as err:
        client.create_instance(42, {"image": "x", "label": "volt-x-a"})
    assert [call["method"] for call in session.calls] == ["PUT"] + ["GET"] * 5
    assert err.value.maybe_created is True and err.value.unavailable is True


def test_create_answered_504_is_not_sent_again():
    """A gateway that timed out waiting: the create may still be under way, so only a long look-up may follow."""
    client, session, sleeps = make_client(FakeResponse(504, text="gateway timeout"))
    with pytest.raises(VastTransportError) as err:
        client.create_instance(42, {"image": "x", "label": "volt-x-a"})
    assert len(session.calls) == 1 and sleeps == []
    assert err.value.maybe_created is True and err.value.unavailable is False


def test_create_never_retried_on_transport_error():
    client, session, sleeps = make_client(requests.exceptions.ReadTimeout("timed out"))
    with pytest.raises(VastTransportError) as err:
        client.create_instance(42, {"image": "x"})
    assert len(session.calls) == 1 and sleeps == []
    assert err.value.maybe_created is True


def test_create_never_retried_on_429():
    client, session, _sleeps = make_client(FakeResponse(429, {"detail": "too frequent"}))
    with pytest.raises(VastRateLimitError) as err:
        client.create_instance(42, {})
    assert len(session.calls) == 1
    assert err.value.maybe_created is False


def test_create_success_returns_contract_and_sends_put():
    client, session, _sleeps = make_client(FakeResponse(200, {"success": True, "new_contract": 777, "instance_api_key": "x"}))
    assert client.create_instance(42, {"image": "img"}) == 777
    assert session.calls[0]["method"] == "PUT"
    assert session.calls[0]["url"].endswith("/api/v0/asks/42/")
    assert session.calls[0]["json"] == {"image": "img"}


def test_create_success_false_is_error():
    client, _s, _sleeps = make_client(FakeResponse(200, {"success": False, "error": "invalid_args", "msg": "bad image"}))
    with pytest.raises(VastError) as err:
        client.create_instance(42, {})
    assert "bad image" in str(err.value)


# -- error mapping ------------------------------------------------------------------------------------

def test_401_message_without_key():
    body = {"success": False, "error": "auth_error", "msg": "Invalid user key"}
    client, _s, _sleeps = make_client(FakeResponse(401, body))
    with pytest.raises(VastAuthError) as err:
        client.current_user()
    assert str(err.value) == ("Vast.ai rejected the API key (HTTP 401: Invalid user key). "
                              "Check VAST_API_KEY or the key file.")
    assert err.value.status == 401


def test_key_scrubbed_from_echoing_error():
    body = {"success": False, "error": "invalid_args", "msg": "bad key %s here" % KEY}
    client, _s, _sleeps = make_client(FakeResponse(400, body))
    with pytest.raises(VastError) as err:
        client.set_instance_label(1, "x")
    assert KEY not in str(err.value)
    assert KEY not in json.dumps(err.value.body)
    assert "<redacted>" in str(err.value)


def test_key_scrubbed_from_transport_error():
    client, _s, _sleeps = make_client(*([requests.exceptions.ConnectionError("failed for %s" % KEY)] * 5))
    with pytest.raises(VastTransportError) as err:
        client.list_instances()
    assert KEY not in str(err.value)


def test_403_auth_error():
    client, _s, _sleeps = make_client(FakeResponse(403, {"error": "not_authorized", "msg": "scoped key"}))
    with pytest.raises(VastAuthError) as err:
        client.list_instances()
    assert "scoped key" in str(err.value)


@pytest.mark.parametrize("status,body", [
    (404, {"success": False, "error": "invalid_args",
           "msg": "error 404/3603: no_such_ask Instance type by id 5 is not available.", "ask_id": 5}),
    (410, {"success": False, "error": "no_such_ask",
           "msg": "error 410/3907: no_such_ask Instance type 5 is no longer available.", "ask_id": 5}),
    (400, {"success": False, "error": "no_such_ask", "msg": "stale offer"}),
    (404, {"error": "invalid_args", "msg": "error 404/3603: Instance type by id 5 is not available."}),
    (200, {"success": False, "error": "no_such_ask", "msg": "no_such_ask Instance type by id 5 is not available.",
           "ask_id": 5}),
])
def test_offer_unavailable_variants(status, body):
    client, session, _sleeps = make_client(FakeResponse(status, body))
    with pytest.raises(VastOfferUnavailableError):
        client.create_instance(5, {})
    assert len(session.calls) == 1


@pytest.mark.parametrize("status,body", [
    (500, {"error": "no_such_ask"}),
    (400, {"error": "invalid_args", "msg": "Invalid args: disk"}),
    (404, {"error": "not_found", "msg": "error 404/13603: nope"}),
    (200, {"success": True, "new_contract": 3603, "msg": "no_such_ask"}),
])
def test_not_offer_unavailable(status, body):
    assert not is_offer_unavailable(status, body)


def test_extract_message_variants():
    assert extract_message({"msg": "a", "error": "b"}) == "a"
    assert extract_message({"message": "m"}) == "m"
    assert extract_message({"detail": "API requests too frequent endpoint threshold=4.5"}).startswith("API requests")
    assert extract_message({"error": "search_quota_exceeded"}) == "search_quota_exceeded"
    assert extract_message(None, "<html><body>Bad   Gateway</body></html>") == "Bad Gateway"
    assert len(extract_message(None, "x" * 1000)) <= 203


def test_plain_text_error_snippet():
    exc = error_from_response(500, "Internal trouble", "GET", "/api/v0/x/")
    assert "Internal trouble" in str(exc) and exc.status == 500


def test_not_found_mapping():
    exc = error_from_response(404, json.dumps({"error": "no_such_instance", "msg": "gone"}), "DELETE", "/p")
    assert isinstance(exc, VastNotFoundError) and exc.error == "no_such_instance"


def test_non_json_success_is_error():
    client, _s, _sleeps = make_client(FakeResponse(200, text="<html>login</html>"))
    with pytest.raises(VastError):
        client.list_instances()


# -- instances -----------------------------------------------------------------------------------------

def test_list_instances_pages_until_no_token():
    pages = [
        FakeResponse(200, {"instances": [{"id": i} for i in range(1, 26)], "next_token": "t1"}),
        FakeResponse(200, {"instances": [{"id": i} for i in range(26, 51)], "next_token": "t2"}),
        FakeResponse(200, {"instances": [{"id": 51, "public_ipaddr": " 203.0.113.7\n"}], "next_token": None}),
    ]
    client, session, _sleeps = make_client(*pages)
    rows = client.list_instances()
    assert [r["id"] for r in rows] == list(range(1, 52))
    assert rows[-1]["public_ipaddr"] == "203.0.113.7"
    first = session.calls[0]["params"]
    assert json.loads(first["select_filters"]) == {}
    assert json.loads(first["order_by"]) == [{"col": "id", "dir": "asc"}]
    assert first["limit"] == "25"
    assert "after_token" not in first
    assert session.calls[1]["params"]["after_token"] == "t1"
    assert session.calls[2]["params"]["after_token"] == "t2"
    assert all(call["url"] == "http://vast.test/api/v1/instances/" for call in session.calls)
    assert all(call["json"] is None for call in session.calls)


def test_list_instances_repeated_token_stops():
    page = FakeResponse(200, {"instances": [], "next_token": "same"})
    client, _s, _sleeps = make_client(page, page)
    with pytest.raises(VastError):
        client.list_instances()


def test_find_by_label_filters_exactly():
    reply = FakeResponse(200, {"instances": [{"id": 1, "label": "a"}, {"id": 2, "label": "ab"}], "next_token": ""})
    client, session, _sleeps = make_client(reply)
    assert [r["id"] for r in client.find_instances_by_label("a")] == [1]
    assert json.loads(session.calls[0]["params"]["select_filters"]) == {"label": {"in": ["a"]}}


def test_get_instance_null_and_strip():
    client, session, _sleeps = make_client(
        FakeResponse(200, {"instances": None}),
        FakeResponse(200, {"instances": {"id": 8, "public_ipaddr": "1.2.3.4\n", "extra_env": [["A", "b"]],
                                         "instance_api_key": "secret"}}))
    assert client.get_instance(7) is None
    assert session.calls[0]["params"] == {"owner": "me"}
    inst = client.get_instance(8)
    assert inst["public_ipaddr"] == "1.2.3.4"
    assert inst["extra_env"] == {"A": "b"}
    assert "instance_api_key" not in inst


@pytest.mark.parametrize("reply,expected", [
    (FakeResponse(200, {"success": True}), True),
    (FakeResponse(404, {"success": False, "error": "not_found", "msg": "Instance not found"}), False),
    (FakeResponse(404, {"success": False, "error": "no_such_instance"}), False),
    (FakeResponse(400, {"success": False, "error": "no_such_instance", "msg": "x"}), False),
])
def test_destroy_idempotent(reply, expected):
    client, session, _sleeps = make_client(reply)
    assert client.destroy_instance(3) is expected
    assert session.calls[0]["method"] == "DELETE" and session.calls[0]["json"] == {}


INVALID_ID = FakeResponse(400, {"success": False, "error": "invalid_args", "msg": "invalid instance_id"})


def test_destroy_answered_invalid_id_is_gone_once_a_look_up_agrees():
    client, session, _sleeps = make_client(INVALID_ID, FakeResponse(200, {"instances": None}))
    assert client.destroy_instance(3) is False
    assert [(call["method"], call["url"]) for call in session.calls] == [
        ("DELETE", "http://vast.test/api/v0/instances/3/"), ("GET", "http://vast.test/api/v0/instances/3/")]


def test_destroy_answered_invalid_id_while_the_instance_is_listed_fails():
    client, _session, _sleeps = make_client(INVALID_ID, FakeResponse(200, {"instances": {"id": 3}}))
    with pytest.raises(VastError) as err:
        client.destroy_instance(3)
    assert err.value.status == 400 and "invalid instance_id" in str(err.value)


def test_set_state_validates():
    client, _s, _sleeps = make_client()
    with pytest.raises(VastConfigError):
        client.set_instance_state(1, "paused")


# -- ssh keys ------------------------------------------------------------------------------------------

def test_list_ssh_keys_404_is_empty():
    client, _s, _sleeps = make_client(FakeResponse(404, {"msg": "No SSH keys found for the user."}))
    assert client.list_ssh_keys() == []


def test_list_ssh_keys_filters_deleted():
    keys = [{"id": 1, "key": "ssh-ed25519 AAA a", "deleted_at": None},
            {"id": 2, "key": "ssh-ed25519 BBB b", "deleted_at": "2026-01-01"}]
    client, _s, _sleeps = make_client(FakeResponse(200, keys))
    assert [k["id"] for k in client.list_ssh_keys()] == [1]


def test_list_ssh_keys_dict_shape():
    client, _s, _sleeps = make_client(FakeResponse(200, {"ssh_keys": [{"id": 3, "public_key": "ssh-rsa AAAA"}]}))
    assert client.list_ssh_keys()[0]["key"] == "ssh-rsa AAAA"


def test_add_ssh_key_not_retried():
    client, session, _sleeps = make_client(FakeResponse(503, text="x"))
    with pytest.raises(VastTransportError):
        client.add_ssh_key("ssh-ed25519 AAAA")
    assert len(session.calls) == 1


def test_timeout_option_validated():
    with pytest.raises(VastConfigError):
        VastClient(session=FakeSession(), timeout=0, environ={"VAST_API_KEY": KEY})
