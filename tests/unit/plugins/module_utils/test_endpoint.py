"""The single SSH endpoint / status rule (module_utils._endpoint), over real-shaped v1 list rows.

fixtures/instance_rows.json holds one full row per case (fields as in the API reference §7.2); the cases are the
shapes the rule must tell apart (vast-api.md §3.12 and §4).
"""

from __future__ import annotations

import json
import os

import pytest

from ansible_collections.voltx.vastai.plugins.module_utils._endpoint import (
    NULL_STATUS,
    direct_ssh_port,
    instance_status,
    proxy_ssh_endpoint,
    ssh_endpoint,
    to_float,
    to_int,
    to_port,
)
from ansible_collections.voltx.vastai.plugins.module_utils._instance import classify_progress, summarize_instance

HERE = os.path.dirname(os.path.abspath(__file__))


def load_rows():
    with open(os.path.join(HERE, "fixtures", "instance_rows.json")) as f:
        return dict((row["label"], row) for row in json.load(f))


ROWS = load_rows()

# label -> (host, port, mode, status)
EXPECTED = {
    "ep-direct": ("203.0.113.7", 41022, "direct", "running"),
    "ep-proxy-only": ("ssh4.vast.ai", 35118, "proxy", "running"),
    "ep-jupyter": ("ssh7.vast.ai", 30501, "proxy", "running"),
    "ep-jupyter-direct-loading": ("ssh5.vast.ai", 31235, "proxy", "loading"),
    "ep-loading": ("ssh6.vast.ai", 31240, "proxy", "loading"),
    "ep-ipv6-first": ("203.0.113.7", 41022, "direct", "running"),
    "ep-strings": ("203.0.113.7", 41022, "direct", "running"),
    "ep-null-status": (None, None, None, "provisioning"),
    "ep-exited": ("ssh2.vast.ai", 21020, "proxy", "exited"),
}


def test_every_fixture_row_has_an_expectation():
    assert sorted(ROWS) == sorted(EXPECTED)


@pytest.mark.parametrize("label", sorted(EXPECTED))
def test_endpoint_and_status_per_row(label):
    host, port, mode, status = EXPECTED[label]
    assert ssh_endpoint(ROWS[label]) == (host, port, mode)
    assert instance_status(ROWS[label]) == status


@pytest.mark.parametrize("label", sorted(EXPECTED))
def test_module_summary_uses_the_rule(label):
    host, port, mode, status = EXPECTED[label]
    summary = summarize_instance(ROWS[label])
    assert (summary["ssh_host"], summary["ssh_port"], summary["ssh_kind"], summary["status"]) == (host, port, mode, status)


def test_ipv4_mapping_wins_over_an_earlier_ipv6_one():
    assert direct_ssh_port(ROWS["ep-ipv6-first"]) == 41022


def test_ipv6_only_mapping_still_used():
    row = dict(ROWS["ep-direct"], ports={"22/tcp": [{"HostIp": "::", "HostPort": "41122"}]})
    assert ssh_endpoint(row) == ("203.0.113.7", 41122, "direct")


def test_string_numbers_become_ints():
    host, port, mode = ssh_endpoint(ROWS["ep-strings"])
    assert port == 41022 and isinstance(port, int)
    row = dict(ROWS["ep-strings"], ports=None)
    assert ssh_endpoint(row) == ("ssh5.vast.ai", 31234, "proxy")
    assert isinstance(ssh_endpoint(row)[1], int)


def test_jupyter_plus_one_applies_to_the_proxy_only():
    # A jupyter runtype with a usable 22/tcp mapping is direct; the +1 is a property of the proxy.
    row = dict(ROWS["ep-jupyter-direct-loading"], public_ipaddr="198.51.100.9\n")
    assert ssh_endpoint(row) == ("198.51.100.9", 41022, "direct")
    assert proxy_ssh_endpoint(row) == ("ssh5.vast.ai", 31235)


@pytest.mark.parametrize("ports", [
    {"22/tcp": [{"HostIp": "0.0.0.0", "HostPort": "not-a-port"}]},
    {"22/tcp": []},
    {"22/tcp": None},
    {"22/tcp": [{"HostIp": "0.0.0.0", "HostPort": "0"}]},
    {"22/tcp": [{"HostIp": "0.0.0.0", "HostPort": "70000"}]},
    {"22/tcp": ["0.0.0.0:41022"]},
    [],
])
def test_unusable_mapping_falls_back_to_proxy(ports):
    row = dict(ROWS["ep-direct"], ports=ports)
    assert ssh_endpoint(row) == ("ssh5.vast.ai", 31234, "proxy")


def test_mapping_without_public_ip_falls_back_to_proxy():
    assert ssh_endpoint(dict(ROWS["ep-direct"], public_ipaddr=" \n")) == ("ssh5.vast.ai", 31234, "proxy")


def test_no_endpoint():
    assert ssh_endpoint(ROWS["ep-null-status"]) == (None, None, None)
    assert ssh_endpoint(None) == (None, None, None)
    assert ssh_endpoint({"ssh_host": "h", "ssh_port": 70000}) == (None, None, None)
    assert ssh_endpoint({"ssh_host": "h", "ssh_port": 65535, "image_runtype": "jupyter_proxy"}) == (None, None, None)


@pytest.mark.parametrize("value, expected", [(None, NULL_STATUS), ("", NULL_STATUS), ("  ", NULL_STATUS),
                                             ("Running", "running"), (" exited\n", "exited"), (7, NULL_STATUS)])
def test_status_normalisation(value, expected):
    assert instance_status({"actual_status": value}) == expected


def test_status_of_a_non_row():
    assert instance_status(None) is None


def test_provisioning_is_pending_for_the_rent_loop():
    # The module keeps waiting on a just-rented instance whose status is still null.
    assert classify_progress({"actual_status": None}, 10, 0, 600, 1000) == "pending"


@pytest.mark.parametrize("value, expected", [(5, 5), ("41022", 41022), (" 7 ", 7), (3.0, 3), (3.5, None), ("x", None),
                                             (True, None), (None, None)])
def test_to_int(value, expected):
    assert to_int(value) == expected


@pytest.mark.parametrize("value, expected", [("0.44", 0.44), (2, 2.0), ("nan", None), ("inf", None), (False, None),
                                             ("", None), (None, None)])
def test_to_float(value, expected):
    assert to_float(value) == expected


@pytest.mark.parametrize("value, expected", [("22", 22), (0, None), (65536, None), (-1, None)])
def test_to_port(value, expected):
    assert to_port(value) == expected
