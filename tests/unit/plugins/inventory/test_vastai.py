"""Unit tests for the voltx.vastai.vastai inventory plugin.

Recorded v1 list rows (fixtures/instances_v1.json) go through a real InventoryData and DataLoader; the HTTP layer is
either a fake client or the real VastClient over a fake requests session.
"""

from __future__ import annotations

import copy
import functools
import json
import os
import re
import sys

import pytest

from ansible.errors import AnsibleError
from ansible.inventory.data import InventoryData
from ansible.inventory.manager import InventoryManager
from ansible.parsing.dataloader import DataLoader
from ansible.plugins.loader import inventory_loader
from ansible.template import Templar
from ansible.utils.display import Display

from ansible_collections.voltx.vastai.plugins.module_utils._client import VastAuthError, VastClient, VastTransportError
from ansible_collections.voltx.vastai.plugins.module_utils._endpoint import to_int
from ansible_collections.voltx.vastai.plugins.module_utils._instance import summarize_instance

HERE = os.path.dirname(os.path.abspath(__file__))
PLUGIN = "voltx.vastai.vastai"
API_KEY = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
MALICIOUS_LABEL = "{{ lookup('pipe', 'touch vastai_pwned && id') }}"
MALICIOUS_HOST = "vastai-28765439"  # a label that is no safe label never names a host

RUNNING = ["train-01", "notebook", "dup-28765436", "dup-28765437", "vastai-28765438", MALICIOUS_HOST]


# --------------------------------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------------------------------

def load_rows():
    with open(os.path.join(HERE, "fixtures", "instances_v1.json")) as f:
        return json.load(f)


def row(rows, instance_id):
    return copy.deepcopy(next(r for r in rows if r["id"] == instance_id))


class FakeClient:
    """Stands in for VastClient: returns recorded rows, counts calls, or raises."""

    def __init__(self, rows=None, error=None):
        self.rows = rows or []
        self.error = error
        self.calls = 0

    def list_instances(self, select_filters=None):
        self.calls += 1
        if self.error is not None:
            raise self.error
        return copy.deepcopy(self.rows)


class NoClient:
    def list_instances(self, select_filters=None):
        raise AssertionError("the API was called although the cache should have answered")


class FakeResponse:
    def __init__(self, status_code, body, headers=None):
        self.status_code = status_code
        self.text = body if isinstance(body, str) else json.dumps(body)
        self.headers = headers or {}


class FakeSession:
    """A requests.Session double serving GET /api/v1/instances/ in pages with a next_token cursor, like the API."""

    def __init__(self, rows, page_size=4, status=200, error_body=None):
        self.rows = rows
        self.page_size = page_size
        self.status = status
        self.error_body = error_body
        self.requests = []

    def request(self, method, url, params=None, json=None, headers=None, timeout=None):  # pylint: disable=redefined-outer-name
        self.requests.append({"method": method, "url": url, "params": params, "headers": headers, "timeout": timeout})
        if self.status != 200:
            return FakeResponse(self.status, self.error_body)
        start = int((params or {}).get("after_token", "0"))
        page = self.rows[start:start + self.page_size]
        nxt = start + self.page_size
        return FakeResponse(200, {
            "success": True,
            "instances_found": len(page),
            "total_instances": len(self.rows),
            "next_token": str(nxt) if nxt < len(self.rows) else None,
            "instances": page,
        })


def write_config(tmp_path, text="", name="test.vastai.yml"):
    path = tmp_path / name
    path.write_text("plugin: %s\n%s" % (PLUGIN, text))
    return str(path)


def parse(path, client=None, cache=True):
    """Run the plugin on ``path`` with a real InventoryData and DataLoader; return (inventory, plugin)."""
    plugin = inventory_loader.get(PLUGIN)
    assert plugin is not None, "inventory plugin %s did not load" % PLUGIN
    if client is not None:
        plugin._api_key = lambda: "test-key"
        plugin._make_client = lambda: client
    inventory = InventoryData()
    plugin.parse(inventory, DataLoader(), path, cache=cache)
    return inventory, plugin


def hostvars(inventory, name):
    return inventory.get_host(name).get_vars()


def group_hosts(inventory, group):
    return sorted(h.name for h in inventory.groups[group].get_hosts())


@pytest.fixture
def rows():
    return load_rows()


@pytest.fixture
def plugin_module():
    plugin = inventory_loader.get(PLUGIN)
    assert plugin is not None
    return sys.modules[type(plugin).__module__]


@pytest.fixture
def real_client(monkeypatch, plugin_module):
    """Make the plugin build a real VastClient whose HTTP goes to the FakeSession returned by the fixture's call."""

    def install(session):
        monkeypatch.setattr(plugin_module, "VastClient", functools.partial(VastClient, session=session, sleep=lambda s: None))
        return session

    return install


# --------------------------------------------------------------------------------------------------------------------
# verify_file
# --------------------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name, expected", [
    ("prod.vastai.yml", True),
    ("prod.vastai.yaml", True),
    ("vastai.yml", True),
    ("prod_vastai.yml", True),
    ("prod.yml", False),
    ("vastai.json", False),
    ("hcloud.yml", False),
    ("vastai.yml.bak", False),
])
def test_verify_file(tmp_path, name, expected):
    path = tmp_path / name
    path.write_text("plugin: %s\n" % PLUGIN)
    assert inventory_loader.get(PLUGIN).verify_file(str(path)) is expected


def test_verify_file_missing(tmp_path):
    assert not inventory_loader.get(PLUGIN).verify_file(str(tmp_path / "absent.vastai.yml"))


# --------------------------------------------------------------------------------------------------------------------
# instance_to_hostvars (pure)
# --------------------------------------------------------------------------------------------------------------------

def test_hostvars_direct(rows, plugin_module):
    hv = plugin_module.instance_to_hostvars(row(rows, 28765432))
    assert hv["ansible_host"] == "203.0.113.7"  # trailing newline stripped
    assert hv["ansible_port"] == 41022 and isinstance(hv["ansible_port"], int)
    assert hv["ansible_user"] == "root"
    assert hv["ansible_pipelining"] is True
    assert hv["ansible_python_interpreter"] == "/usr/bin/python3"
    assert hv["vastai_ssh_mode"] == "direct"
    assert hv["vastai_direct_ssh_port"] == 41022
    assert hv["vastai_public_ipaddr"] == "203.0.113.7"
    assert hv["vastai_ssh_host"] == "ssh5.vast.ai"
    assert hv["vastai_ssh_port"] == 31234
    assert hv["vastai_id"] == 28765432
    assert hv["vastai_label"] == "train-01"
    assert hv["vastai_status"] == "running"
    assert hv["vastai_intended_status"] == "running"
    assert hv["vastai_gpu_name"] == "RTX 5090"
    assert hv["vastai_num_gpus"] == 1
    assert hv["vastai_dph_total"] == pytest.approx(0.4420833)
    assert hv["vastai_machine_id"] == 38411
    assert hv["vastai_geolocation"] == "Texas, US"
    assert hv["vastai_cuda_max_good"] == 12.9
    assert hv["vastai_disk_space"] == 250.0
    assert hv["vastai_start_date"] == 1795540000.12
    assert hv["vastai_image_uuid"] == "vastai/base-image:cuda-12.8.1-auto"
    assert hv["vastai_reliability"] == 0.9975


def test_hostvars_never_carry_secrets(rows, plugin_module):
    hv = plugin_module.instance_to_hostvars(row(rows, 28765432))
    flat = json.dumps(hv)
    assert "jupyter_token" not in flat and "53fc448d" not in flat
    assert "wandb-secret-value" not in flat and "extra_env" not in flat
    connection = ("ansible_host", "ansible_port", "ansible_user", "ansible_pipelining", "ansible_python_interpreter")
    assert all(k.startswith("vastai_") or k in connection for k in hv)


def test_hostvars_loading_uses_proxy(rows, plugin_module):
    hv = plugin_module.instance_to_hostvars(row(rows, 28765433))
    assert (hv["ansible_host"], hv["ansible_port"], hv["vastai_ssh_mode"]) == ("ssh6.vast.ai", 31240, "proxy")
    assert hv["vastai_public_ipaddr"] is None
    assert hv["vastai_direct_ssh_port"] is None


def test_hostvars_jupyter_proxy_adds_one(rows, plugin_module):
    hv = plugin_module.instance_to_hostvars(row(rows, 28765435))
    assert (hv["ansible_host"], hv["ansible_port"]) == ("ssh7.vast.ai", 30501)
    assert hv["vastai_ssh_port"] == 30500  # the API's value, unchanged


def test_hostvars_without_endpoint(rows, plugin_module):
    hv = plugin_module.instance_to_hostvars(row(rows, 28765440))
    assert "ansible_host" not in hv and "ansible_port" not in hv
    assert hv["ansible_user"] == "root"
    assert hv["vastai_ssh_mode"] is None
    assert hv["vastai_status"] == "provisioning"


@pytest.mark.parametrize("ports", [
    {"22/tcp": [{"HostIp": "0.0.0.0", "HostPort": "not-a-port"}]},
    {"22/tcp": []},
    {"22/tcp": None},
    {"22/tcp": [{"HostIp": "0.0.0.0", "HostPort": "0"}]},
    [],
])
def test_hostvars_bad_port_mapping_falls_back_to_proxy(rows, plugin_module, ports):
    inst = row(rows, 28765432)
    inst["ports"] = ports
    hv = plugin_module.instance_to_hostvars(inst)
    assert (hv["ansible_host"], hv["ansible_port"], hv["vastai_ssh_mode"]) == ("ssh5.vast.ai", 31234, "proxy")


def test_hostvars_direct_needs_public_ip(rows, plugin_module):
    inst = row(rows, 28765432)
    inst["public_ipaddr"] = " \n"
    hv = plugin_module.instance_to_hostvars(inst)
    assert (hv["ansible_host"], hv["vastai_ssh_mode"]) == ("ssh5.vast.ai", "proxy")


def test_hostvars_minimal_row(plugin_module):
    hv = plugin_module.instance_to_hostvars({"id": 7})
    assert hv["vastai_id"] == 7 and hv["vastai_label"] is None and "ansible_host" not in hv


def test_assign_host_names(plugin_module):
    named, collided = plugin_module.assign_host_names([
        {"id": 1, "label": "a"}, {"id": 2, "label": "a"}, {"id": 3, "label": None}, {"id": 4, "label": "vastai-3"},
        {"id": 5, "label": "b"},
    ])
    assert [n for n, dummy in named] == ["a-1", "a-2", "vastai-3-3", "vastai-3-4", "b"]
    assert ("a", [1, 2]) in collided and ("vastai-3", [3, 4]) in collided


def load_endpoint_rows():
    """The endpoint cases shared with the module_utils tests (direct, proxy-only, jupyter, loading, IPv6, strings)."""
    path = os.path.join(HERE, os.pardir, "module_utils", "fixtures", "instance_rows.json")
    with open(path) as f:
        return json.load(f)


def all_fixture_rows():
    return load_rows() + load_endpoint_rows()


def test_hostvars_agree_with_module_summary_on_every_row(tmp_path):
    """What ``ansible-inventory`` shows and what instance/instance_info return are one answer, row by row."""
    rows = all_fixture_rows()
    inventory, dummy = parse(write_config(tmp_path), FakeClient(rows))
    by_id = dict((to_int(r["id"]), r) for r in rows)
    assert len(inventory.hosts) == len(by_id)
    for host in inventory.hosts.values():
        hv = host.get_vars()
        summary = summarize_instance(by_id[hv["vastai_id"]])
        assert (hv.get("ansible_host"), hv.get("ansible_port"), hv["vastai_ssh_mode"]) == (
            summary["ssh_host"], summary["ssh_port"], summary["ssh_kind"]), host.name
        assert hv["vastai_status"] == summary["status"], host.name
        assert hv["vastai_id"] == summary["id"], host.name
        assert hv["vastai_public_ipaddr"] == summary["public_ipaddr"], host.name
        assert hv["vastai_dph_total"] == summary["dph_total"], host.name
        assert hv["vastai_disk_space"] == summary["disk_gb"], host.name
        assert hv["ansible_user"] == summary["ssh_user"], host.name
        assert host.name in group_hosts(inventory, "vastai_" + summary["status"])


def test_jupyter_direct_loading_row_uses_proxy_plus_one(tmp_path):
    # The row the module and the inventory used to disagree on (31234 vs 31235).
    inventory, dummy = parse(write_config(tmp_path), FakeClient(load_endpoint_rows()))
    hv = hostvars(inventory, "ep-jupyter-direct-loading")
    assert (hv["ansible_host"], hv["ansible_port"], hv["vastai_ssh_mode"]) == ("ssh5.vast.ai", 31235, "proxy")
    assert hv["vastai_ssh_port"] == 31234 and hv["vastai_proxy_ssh_port"] == 31235
    assert hv["vastai_direct_ssh_port"] == 41022


def test_hostvars_numbers_are_numbers(tmp_path):
    inventory, dummy = parse(write_config(tmp_path), FakeClient(load_endpoint_rows()))
    hv = hostvars(inventory, "ep-strings")  # the API sent these as strings
    ints = ("ansible_port", "vastai_id", "vastai_ssh_port", "vastai_proxy_ssh_port", "vastai_direct_ssh_port",
            "vastai_num_gpus", "vastai_machine_id", "vastai_host_id", "vastai_gpu_ram", "vastai_cpu_ram")
    floats = ("vastai_dph_total", "vastai_disk_space", "vastai_start_date", "vastai_cuda_max_good",
              "vastai_reliability", "vastai_inet_up", "vastai_inet_down", "vastai_end_date")
    for name in ints:
        assert isinstance(hv[name], int) and not isinstance(hv[name], bool), (name, hv[name])
    for name in floats:
        assert isinstance(hv[name], float), (name, hv[name])
    assert (hv["vastai_id"], hv["ansible_port"], hv["vastai_num_gpus"]) == (29100007, 41022, 2)
    assert hv["vastai_dph_total"] == pytest.approx(0.4420833)


def test_numbers_usable_in_constructed_groups(tmp_path):
    config = "groups:\n  cheap: vastai_dph_total < 0.5\n  multi: vastai_num_gpus > 1\n"
    inventory, dummy = parse(write_config(tmp_path, config), FakeClient(load_endpoint_rows()))
    assert "ep-strings" in group_hosts(inventory, "cheap")
    assert group_hosts(inventory, "multi") == ["ep-strings"]


def test_every_status_reachable_with_its_group(tmp_path):
    inventory, dummy = parse(write_config(tmp_path), FakeClient(load_endpoint_rows()))
    assert group_hosts(inventory, "vastai_provisioning") == ["ep-null-status"]
    assert group_hosts(inventory, "vastai_exited") == ["ep-exited"]
    assert group_hosts(inventory, "vastai_loading") == ["ep-jupyter-direct-loading", "ep-loading"]
    assert hostvars(inventory, "ep-exited")["vastai_status"] == "exited"  # " Exited " from the API


# --------------------------------------------------------------------------------------------------------------------
# inventory construction
# --------------------------------------------------------------------------------------------------------------------

def test_default_lists_every_status(tmp_path, rows):
    inventory, dummy = parse(write_config(tmp_path), FakeClient(rows))
    assert len(inventory.hosts) == len(rows)
    assert group_hosts(inventory, "vastai_running") == sorted(RUNNING)
    assert group_hosts(inventory, "vastai_loading") == ["train-02"]
    assert group_hosts(inventory, "vastai_exited") == ["old-run"]
    assert group_hosts(inventory, "vastai_provisioning") == ["fresh"]
    assert hostvars(inventory, "old-run")["vastai_status"] == "exited"


def test_statuses_running_and_loading(tmp_path, rows):
    inventory, dummy = parse(write_config(tmp_path, "statuses: [running, loading]\n"), FakeClient(rows))
    assert sorted(inventory.hosts) == sorted(RUNNING + ["train-02"])
    assert group_hosts(inventory, "vastai") == sorted(RUNNING + ["train-02"])
    assert group_hosts(inventory, "vastai_running") == sorted(RUNNING)
    assert group_hosts(inventory, "vastai_loading") == ["train-02"]
    assert "vastai_exited" not in inventory.groups
    assert "old-run" not in inventory.hosts and "fresh" not in inventory.hosts


def test_hostvars_in_inventory(tmp_path, rows):
    inventory, dummy = parse(write_config(tmp_path), FakeClient(rows))
    hv = hostvars(inventory, "train-01")
    assert (hv["ansible_host"], hv["ansible_port"], hv["ansible_user"]) == ("203.0.113.7", 41022, "root")
    assert hv["vastai_id"] == 28765432
    hv = hostvars(inventory, "notebook")
    assert (hv["ansible_host"], hv["ansible_port"]) == ("ssh7.vast.ai", 30501)
    hv = hostvars(inventory, "vastai-28765438")
    assert hv["vastai_label"] is None
    assert (hv["ansible_host"], hv["ansible_port"]) == ("ssh9.vast.ai", 39999)


def test_all_statuses(tmp_path, rows):
    inventory, dummy = parse(write_config(tmp_path, "statuses: []\n"), FakeClient(rows))
    assert len(inventory.hosts) == len(rows)
    assert group_hosts(inventory, "vastai_exited") == ["old-run"]
    assert group_hosts(inventory, "vastai_provisioning") == ["fresh"]
    hv = hostvars(inventory, "fresh")
    assert "ansible_host" not in hv and hv["vastai_status"] == "provisioning"
    hv = hostvars(inventory, "old-run")
    assert (hv["ansible_host"], hv["ansible_port"]) == ("ssh2.vast.ai", 21020)


def test_status_filter(tmp_path, rows):
    inventory, dummy = parse(write_config(tmp_path, "statuses: [exited, provisioning]\n"), FakeClient(rows))
    assert sorted(inventory.hosts) == ["fresh", "old-run"]


def test_status_filter_ignores_case(tmp_path, rows):
    inventory, dummy = parse(write_config(tmp_path, "statuses: [' Exited']\n"), FakeClient(rows))
    assert sorted(inventory.hosts) == ["old-run"]


@pytest.mark.parametrize("labels, expected", [
    (["train-*"], ["train-01", "train-02"]),
    (["train-0?", "notebook"], ["notebook", "train-01", "train-02"]),
    ([""], ["vastai-28765438"]),
    (["dup"], ["dup-28765436", "dup-28765437"]),
    (["TRAIN-*"], []),
])
def test_label_filter(tmp_path, rows, labels, expected):
    inventory, dummy = parse(write_config(tmp_path, "labels: %s\n" % json.dumps(labels)), FakeClient(rows))
    assert sorted(inventory.hosts) == expected


def test_star_includes_unlabeled(tmp_path, rows):
    inventory, dummy = parse(write_config(tmp_path, "labels: ['*']\nstatuses: []\n"), FakeClient(rows))
    assert len(inventory.hosts) == len(rows)


def test_duplicate_labels_are_suffixed_and_warned(tmp_path, rows, monkeypatch):
    warnings = []
    plugin = inventory_loader.get(PLUGIN)
    monkeypatch.setattr(plugin.display, "warning", lambda msg, *a, **kw: warnings.append(msg))
    inventory, dummy = parse(write_config(tmp_path), FakeClient(rows))
    assert "dup" not in inventory.hosts
    assert hostvars(inventory, "dup-28765436")["ansible_host"] == "198.51.100.31"
    assert hostvars(inventory, "dup-28765437")["ansible_host"] == "198.51.100.32"
    assert any("28765436" in w and "28765437" in w and "dup" in w for w in warnings)


def test_duplicate_row_from_paging_is_one_host(tmp_path, rows):
    inventory, dummy = parse(write_config(tmp_path), FakeClient(rows + [row(rows, 28765432)]))
    assert "train-01" in inventory.hosts
    assert not any(h.startswith("train-01-") for h in inventory.hosts)


def test_empty_account(tmp_path):
    inventory, dummy = parse(write_config(tmp_path), FakeClient([]))
    assert "vastai" in inventory.groups
    assert not inventory.hosts


# --------------------------------------------------------------------------------------------------------------------
# constructed: compose, groups, keyed_groups, strict
# --------------------------------------------------------------------------------------------------------------------

CONSTRUCTED = """
statuses: []
keyed_groups:
  - key: vastai_gpu_name
    prefix: gpu
  - key: vastai_num_gpus | string
    prefix: gpus
groups:
  cheap: vastai_dph_total < 0.5
  multi_gpu: vastai_num_gpus > 1
compose:
  ansible_host: vastai_ssh_host
  hourly_cents: (vastai_dph_total * 100) | round | int
  label_copy: vastai_label
"""


def test_constructed(tmp_path, rows):
    inventory, dummy = parse(write_config(tmp_path, CONSTRUCTED), FakeClient(rows))
    assert group_hosts(inventory, "gpu_RTX_5090") == sorted(["train-01", MALICIOUS_HOST, "fresh"])
    assert group_hosts(inventory, "gpu_H100_SXM") == ["train-02"]
    assert group_hosts(inventory, "gpu_A100_PCIE") == ["vastai-28765438"]
    assert group_hosts(inventory, "gpus_8") == ["train-02"]
    assert "vastai-28765438" in group_hosts(inventory, "gpus_2")
    assert group_hosts(inventory, "multi_gpu") == ["train-02", "vastai-28765438"]
    assert "train-01" in group_hosts(inventory, "cheap") and "train-02" not in group_hosts(inventory, "cheap")
    hv = hostvars(inventory, "train-01")
    assert hv["ansible_host"] == "ssh5.vast.ai"  # compose overrides the direct address
    assert hv["hourly_cents"] == 44
    assert hv["label_copy"] == "train-01"


def test_strict_raises_on_bad_compose(tmp_path, rows):
    path = write_config(tmp_path, "strict: true\ncompose:\n  x: vastai_no_such_var.attr\n")
    with pytest.raises(AnsibleError):
        parse(path, FakeClient(rows))


def test_not_strict_ignores_bad_compose(tmp_path, rows):
    inventory, dummy = parse(write_config(tmp_path, "compose:\n  x: vastai_no_such_var.attr\n"), FakeClient(rows))
    assert "x" not in hostvars(inventory, "train-01")


# --------------------------------------------------------------------------------------------------------------------
# unsafe: API data is never templated
# --------------------------------------------------------------------------------------------------------------------

def test_malicious_label_is_never_templated(tmp_path, rows):
    config = "compose:\n  label_copy: vastai_label\n  geo_copy: vastai_geolocation\n"
    inventory, dummy = parse(write_config(tmp_path, config), FakeClient(rows))
    assert MALICIOUS_LABEL not in inventory.hosts
    hv = hostvars(inventory, MALICIOUS_HOST)
    assert hv["vastai_label"] == MALICIOUS_LABEL
    assert hv["label_copy"] == MALICIOUS_LABEL
    assert hv["geo_copy"] == "{{ lookup('env', 'HOME') }}"

    # Render the host's variables the way a task would use them.
    templar = Templar(loader=DataLoader(), variables=dict(hv, inventory_hostname=MALICIOUS_HOST))
    assert templar.template(hv["vastai_label"]) == MALICIOUS_LABEL
    assert templar.template(hv["vastai_geolocation"]) == "{{ lookup('env', 'HOME') }}"
    assert templar.template(hv) == hv
    assert not (tmp_path / "vastai_pwned").exists()


def test_values_are_marked_unsafe(tmp_path, rows):
    inventory, dummy = parse(write_config(tmp_path), FakeClient(rows))
    hv = hostvars(inventory, MALICIOUS_HOST)
    try:  # ansible-core >= 2.19: data tagging; API strings must not carry trust
        from ansible._internal._datatag._tags import TrustedAsTemplate
    except ImportError:  # older cores: AnsibleUnsafe subclasses
        from ansible.utils.unsafe_proxy import AnsibleUnsafe
        assert isinstance(hv["vastai_label"], AnsibleUnsafe)
        assert isinstance(hv["vastai_geolocation"], AnsibleUnsafe)
    else:
        assert not TrustedAsTemplate.is_tagged_on(hv["vastai_label"])
        assert not TrustedAsTemplate.is_tagged_on(hv["vastai_geolocation"])


def test_malicious_label_through_inventory_manager(tmp_path, rows, real_client, monkeypatch):
    """The whole ansible-inventory path: InventoryManager -> auto -> this plugin -> VastClient over a fake session."""
    real_client(FakeSession(rows))
    monkeypatch.setenv("VAST_API_KEY", API_KEY)
    path = write_config(tmp_path, "compose:\n  label_copy: vastai_label\n")
    manager = InventoryManager(loader=DataLoader(), sources=[path])
    host = manager.get_host(MALICIOUS_HOST)
    assert host is not None
    assert host.get_vars()["label_copy"] == MALICIOUS_LABEL
    assert sorted(h.name for h in manager.get_hosts("vastai_running")) == sorted(RUNNING)
    assert not (tmp_path / "vastai_pwned").exists()


def test_instance_label_makes_the_training_group_and_reaches_localhost(tmp_path, rows, real_client, monkeypatch):
    """The label is set once, in the inventory: the labelled host is in `training`, and the rent play on the
    implicit localhost reads the same label."""
    from ansible.vars.manager import VariableManager

    real_client(FakeSession(rows))
    monkeypatch.setenv("VAST_API_KEY", API_KEY)
    path = write_config(tmp_path, "instance_label: train-01\n")
    loader = DataLoader()
    manager = InventoryManager(loader=loader, sources=[path])
    assert [h.name for h in manager.get_hosts("training")] == ["train-01"]
    variables = VariableManager(loader=loader, inventory=manager)
    localhost = manager.get_host("localhost")
    assert localhost.implicit
    assert variables.get_vars(host=localhost)["vastai_instance_label"] == "train-01"
    assert variables.get_vars(host=manager.get_host("notebook"))["vastai_instance_label"] == "train-01"


def test_default_instance_label_group_is_empty_without_that_instance(tmp_path, rows):
    inventory, dummy = parse(write_config(tmp_path), client=FakeClient(rows))
    assert group_hosts(inventory, "training") == []
    assert inventory.groups["all"].get_vars()["vastai_instance_label"] == "volt-x-training"


CAMPAIGN = """\
instances:
  - label: train-01
    vars: {campaign_budget_usd: 5}
  - label: train-lr3e4
    vars:
      campaign_stages: [{name: fast, lr: "3e-4"}]
      harvest_note: "{{ inventory_hostname }}"
"""


def test_a_campaign_declares_every_instance_with_its_own_vars_rented_or_not(tmp_path, rows):
    """Each label of the option instances is a host of `campaign` with its own variables before it is rented (so
    the rent can run on it); once its instance exists it is in `training` with the instance's variables too."""
    inventory, dummy = parse(write_config(tmp_path, CAMPAIGN), client=FakeClient(rows))
    assert group_hosts(inventory, "campaign") == ["train-01", "train-lr3e4"]
    assert group_hosts(inventory, "training") == ["train-01"]
    rented, declared = hostvars(inventory, "train-01"), hostvars(inventory, "train-lr3e4")
    assert rented["vastai_id"] == 28765432 and rented["vastai_instance_label"] == "train-01"
    assert rented["campaign_budget_usd"] == 5 and "campaign_stages" not in rented
    assert declared["vastai_instance_label"] == "train-lr3e4" and declared["campaign_stages"][0]["lr"] == "3e-4"
    assert "ansible_host" not in declared and "vastai_id" not in declared
    assert "train-lr3e4" not in group_hosts(inventory, "vastai")
    # The user's own settings stay templatable, as in group_vars; the instance_label default names nothing.
    templar = Templar(loader=DataLoader(), variables=dict(declared, inventory_hostname="train-lr3e4"))
    assert templar.template(declared["harvest_note"]) == "train-lr3e4"
    assert "vastai_instance_label" not in inventory.groups["all"].get_vars()


def test_without_a_campaign_there_is_no_campaign_group(tmp_path, rows):
    inventory, dummy = parse(write_config(tmp_path, "instance_label: train-01\n"), client=FakeClient(rows))
    assert "campaign" not in inventory.groups
    assert group_hosts(inventory, "training") == ["train-01"]


@pytest.mark.parametrize("entries, message", [
    ("[{label: a}, {label: a}]", "the label a is declared twice"),
    ("[{label: ''}]", "instances[0].label: '' is not a label this collection rents under: use 1 to 64 letters"),
    ("[{label: a}, {name: b}]", "instances[1] has unknown keys name"),
    ("[{label: a, vars: [x]}]", "instances[0].vars (a) must be a mapping"),
])
def test_a_wrong_campaign_fails_naming_the_entry(tmp_path, rows, entries, message):
    with pytest.raises(AnsibleError, match=re.escape(message)):
        parse(write_config(tmp_path, "instances: %s\n" % entries), client=FakeClient(rows))


# Labels that are code, paths or shell: the inventory's own are refused, the API's never name a host.
BAD_LABELS = ["volt-x-{{ lookup('pipe', 'touch vastai_pwned && id') }}", "volt-x-{% if 1 %}x{% endif %}",
              "volt-x/../../escape", "volt-x-a..b", "volt-x-$(touch vastai_pwned)", "volt-x-`id`", "volt-x;id",
              "volt x", "volt-x-\ttab", "-volt-x", "v" * 65]


@pytest.mark.parametrize("label", BAD_LABELS)
def test_a_label_that_is_code_a_path_or_shell_fails_the_inventory_naming_the_option(tmp_path, rows, label):
    for config, option in (({"instance_label": label}, "instance_label"),
                           ({"instances": [{"label": "volt-x-ok"}, {"label": label}]}, "instances[1].label")):
        with pytest.raises(AnsibleError) as info:
            text = "".join("%s: %s\n" % (key, json.dumps(value)) for key, value in config.items())
            parse(write_config(tmp_path, text), client=FakeClient(rows))
        assert str(info.value).startswith("Vast.ai inventory: %s: %r is not a label" % (option, label))
        assert "letters, digits, '.', '_' or '-'" in str(info.value)
    assert not (tmp_path / "vastai_pwned").exists()


def test_a_safe_label_is_taken_literally(tmp_path, rows):
    inventory, dummy = parse(write_config(tmp_path, "instance_label: volt-x.run_2-b\n"), client=FakeClient(rows))
    assert inventory.groups["all"].get_vars()["vastai_instance_label"] == "volt-x.run_2-b"


@pytest.mark.parametrize("label", BAD_LABELS[:-1] + ["..", "/etc", "volt-x-z/../../../escape"])
def test_a_label_from_the_api_that_is_code_a_path_or_shell_never_names_a_host(tmp_path, rows, label):
    bad = dict(row(rows, 28765432), label=label)
    inventory, dummy = parse(write_config(tmp_path, "instance_label: volt-x-training\n"), client=FakeClient([bad]))
    assert list(inventory.hosts) == ["vastai-28765432"]
    assert hostvars(inventory, "vastai-28765432")["vastai_label"] == label.strip()
    assert not (tmp_path / "vastai_pwned").exists()


def test_the_inventory_names_its_account_without_its_key(tmp_path, rows, monkeypatch):
    monkeypatch.setenv("VAST_API_KEY", API_KEY)
    monkeypatch.setenv("VAST_API_URL", "http://127.0.0.1:1/")
    inventory, dummy = parse(write_config(tmp_path), client=FakeClient(rows))
    account = inventory.groups["all"].get_vars()["vastai_inventory_account"]
    assert account == VastClient(session=object()).account()
    assert account["api_url"] == "http://127.0.0.1:1" and API_KEY not in json.dumps(account)
    monkeypatch.setenv("VAST_API_KEY", API_KEY[::-1])
    assert VastClient(session=object()).account()["key_sha256"] != account["key_sha256"]


# --------------------------------------------------------------------------------------------------------------------
# the real client: paging, key, URL, errors
# --------------------------------------------------------------------------------------------------------------------

def test_real_client_pages_and_auth(tmp_path, rows, real_client, monkeypatch):
    session = real_client(FakeSession(rows, page_size=4))
    monkeypatch.setenv("VAST_API_KEY", API_KEY)
    path = write_config(tmp_path, "api_url: http://127.0.0.1:8081\nstatuses: []\nrequest_timeout: 7\n")
    inventory, dummy = parse(path)
    assert len(inventory.hosts) == len(rows)
    assert len(session.requests) == 3  # 9 rows, 4 a page
    first = session.requests[0]
    assert first["method"] == "GET"
    assert first["url"] == "http://127.0.0.1:8081/api/v1/instances/"
    assert first["headers"]["Authorization"] == "Bearer " + API_KEY
    assert first["timeout"] == 7.0
    assert API_KEY not in json.dumps([r["params"] for r in session.requests])
    assert session.requests[1]["params"]["after_token"] == "4"


def test_api_url_from_env(tmp_path, rows, real_client, monkeypatch):
    session = real_client(FakeSession(rows))
    monkeypatch.setenv("VAST_API_KEY", API_KEY)
    monkeypatch.setenv("VAST_API_URL", "http://127.0.0.1:9999")
    parse(write_config(tmp_path))
    assert session.requests[0]["url"] == "http://127.0.0.1:9999/api/v1/instances/"


def test_the_key_is_the_modules_one_never_the_inventory_file_s(tmp_path, rows, real_client, monkeypatch):
    # The modules read VAST_API_KEY or the key files (never an option): an inventory of another key would list an
    # account the playbooks do not rent on.
    session = real_client(FakeSession(rows))
    monkeypatch.setenv("VAST_API_KEY", API_KEY)
    parse(write_config(tmp_path, "api_key: another-accounts-key\n"))
    assert session.requests[0]["headers"]["Authorization"] == "Bearer " + API_KEY


def test_api_key_from_cli_key_file(tmp_path, rows, real_client):
    session = real_client(FakeSession(rows))
    key_file = tmp_path / "home" / ".config" / "vastai" / "vast_api_key"
    key_file.parent.mkdir(parents=True)
    key_file.write_text(API_KEY + "\n")
    parse(write_config(tmp_path))
    assert session.requests[0]["headers"]["Authorization"] == "Bearer " + API_KEY


class TfaExpiredSession(FakeSession):
    """Refuses the 2FA session key as expired (404, the CLI's signal) and serves the API key file's key."""

    def request(self, method, url, params=None, json=None, headers=None, timeout=None):  # pylint: disable=redefined-outer-name
        if headers["Authorization"] == "Bearer " + "f" * 64:
            self.requests.append({"method": method, "url": url, "params": params, "headers": headers})
            return FakeResponse(404, {"msg": "Session expired. Please log in again."})
        return super().request(method, url, params=params, json=json, headers=headers, timeout=timeout)


def test_an_expired_tfa_session_key_gives_way_to_the_cli_key_file(tmp_path, rows, real_client):
    session = real_client(TfaExpiredSession(rows))
    config = tmp_path / "home" / ".config" / "vastai"
    config.mkdir(parents=True)
    (config / "vast_tfa_key").write_text("f" * 64 + "\n")
    (config / "vast_api_key").write_text(API_KEY + "\n")
    inventory, dummy = parse(write_config(tmp_path))
    assert [r["headers"]["Authorization"] for r in session.requests[:2]] == ["Bearer " + "f" * 64, "Bearer " + API_KEY]
    assert inventory.hosts


def test_no_key_anywhere_is_one_warning_line_saying_where_the_key_goes_and_no_host(tmp_path, rows, real_client,
                                                                                   monkeypatch):
    session = real_client(FakeSession(rows))
    warnings = []
    monkeypatch.setattr(Display, "warning", lambda self, msg, *args, **kwargs: warnings.append(msg))
    inventory, dummy = parse(write_config(tmp_path))
    assert not session.requests
    assert not inventory.hosts
    (warning,) = warnings
    assert "\n" not in warning
    assert "VAST_API_KEY" in warning and os.path.join(".config", "vastai", "vast_api_key") in warning


def test_auth_error_carries_api_message_not_key(tmp_path, rows, real_client, monkeypatch):
    real_client(FakeSession(rows, status=401, error_body={"success": False, "error": "auth_error", "msg": "Invalid user key"}))
    monkeypatch.setenv("VAST_API_KEY", API_KEY)
    with pytest.raises(AnsibleError) as excinfo:
        parse(write_config(tmp_path))
    message = str(excinfo.value)
    assert "Invalid user key" in message
    assert API_KEY not in message


def test_error_echoing_the_key_is_scrubbed(tmp_path, rows, real_client, monkeypatch):
    real_client(FakeSession(rows, status=400, error_body={"error": "invalid_request", "msg": "bad key %s" % API_KEY}))
    monkeypatch.setenv("VAST_API_KEY", API_KEY)
    with pytest.raises(AnsibleError) as excinfo:
        parse(write_config(tmp_path))
    assert API_KEY not in str(excinfo.value)


def test_retries_then_succeeds(tmp_path, rows, real_client, monkeypatch):
    class Flaky(FakeSession):
        def request(self, *args, **kwargs):
            if len(self.requests) < 2:
                self.requests.append(kwargs)
                return FakeResponse(503, "Service Unavailable")
            return super().request(*args, **kwargs)

    session = real_client(Flaky(rows, page_size=25))
    monkeypatch.setenv("VAST_API_KEY", API_KEY)
    inventory, dummy = parse(write_config(tmp_path, "retries: 2\n"))
    assert len(session.requests) == 3
    assert "train-01" in inventory.hosts


def test_an_api_that_cannot_be_read_leaves_the_reason_for_the_playbooks(tmp_path, rows, real_client, monkeypatch):
    """Not a parse failure (whose warning would be buried and would leave the playbooks guessing): an empty inventory
    holding the reason, and no instance label, so that nothing is rented on a guess."""
    session = real_client(FakeSession(rows, status=429, error_body="API requests too frequent"))
    monkeypatch.setenv("VAST_API_KEY", API_KEY)
    inventory, dummy = parse(write_config(tmp_path, "retries: 1\n"))
    assert len(session.requests) == 2
    group_vars = inventory.groups["all"].get_vars()
    assert "too frequent" in group_vars["vastai_inventory_unreadable"]
    assert "vastai_instance_label" not in group_vars
    assert inventory.hosts == {}


def test_negative_retries(tmp_path, monkeypatch):
    monkeypatch.setenv("VAST_API_KEY", API_KEY)
    with pytest.raises(AnsibleError, match="retries must be 0 or more"):
        parse(write_config(tmp_path, "retries: -1\n"))


def test_client_errors_become_ansible_errors(tmp_path):
    error = VastAuthError("Invalid user key", status=401, error="auth_error")
    with pytest.raises(AnsibleError, match=str(error)):
        parse(write_config(tmp_path), FakeClient(error=error))


def test_a_network_failure_leaves_the_reason_for_the_playbooks(tmp_path):
    error = VastTransportError("Connection to Vast.ai failed on GET /api/v1/instances/: refused")
    inventory, dummy = parse(write_config(tmp_path), FakeClient(error=error))
    assert str(error) in inventory.groups["all"].get_vars()["vastai_inventory_unreadable"]


def test_bad_reply_shape(tmp_path):
    class Weird:
        def list_instances(self, select_filters=None):
            return {"instances": []}

    with pytest.raises(AnsibleError, match="not a list"):
        parse(write_config(tmp_path), Weird())


# --------------------------------------------------------------------------------------------------------------------
# caching
# --------------------------------------------------------------------------------------------------------------------

CACHE = """
cache: true
cache_plugin: ansible.builtin.jsonfile
cache_connection: {dir}
cache_timeout: 3600
statuses: []
"""


def test_cache_hit_makes_no_api_call(tmp_path, rows):
    cache_dir = tmp_path / "cache"
    path = write_config(tmp_path, CACHE.format(dir=cache_dir))

    client = FakeClient(rows)
    first, plugin = parse(path, client)
    plugin.update_cache_if_changed()  # what InventoryManager does after parse()
    assert client.calls == 1

    # A second run (fresh plugin object) is served from the cache: no client is even built.
    second, plugin = parse(path, NoClient())
    assert sorted(second.hosts) == sorted(first.hosts)
    assert hostvars(second, "notebook")["ansible_port"] == 30501
    assert hostvars(second, MALICIOUS_HOST)["vastai_label"] == MALICIOUS_LABEL

    # cache=False (--flush-cache / meta: refresh_inventory) goes back to the API and refreshes the cache.
    fresh_rows = [r for r in rows if r["id"] != 28765432]
    client = FakeClient(fresh_rows)
    third, plugin = parse(path, client, cache=False)
    plugin.update_cache_if_changed()
    assert client.calls == 1
    assert "train-01" not in third.hosts
    fourth, plugin = parse(path, NoClient())
    assert "train-01" not in fourth.hosts


def test_cache_holds_no_secrets(tmp_path, rows, real_client, monkeypatch):
    real_client(FakeSession(rows))
    monkeypatch.setenv("VAST_API_KEY", API_KEY)
    cache_dir = tmp_path / "cache"
    dummy, plugin = parse(write_config(tmp_path, CACHE.format(dir=cache_dir)))
    plugin.update_cache_if_changed()
    files = list(cache_dir.iterdir())
    assert files
    content = "".join(f.read_text() for f in files)
    assert API_KEY not in content
    assert "53fc448d" not in content  # jupyter_token
    assert "wandb-secret-value" not in content  # extra_env
    assert "train-01" in content


def test_cache_disabled_always_calls_api(tmp_path, rows):
    path = write_config(tmp_path, "cache: false\n")
    client = FakeClient(rows)
    parse(path, client)
    parse(path, client)
    assert client.calls == 2


def test_cache_is_per_api_url(tmp_path, rows, monkeypatch):
    cache_dir = tmp_path / "cache"
    path = write_config(tmp_path, CACHE.format(dir=cache_dir))
    dummy, plugin = parse(path, FakeClient(rows))
    plugin.update_cache_if_changed()
    monkeypatch.setenv("VAST_API_URL", "http://127.0.0.1:8081")
    client = FakeClient(rows[:1])
    inventory, dummy = parse(path, client)
    assert client.calls == 1
    assert sorted(inventory.hosts) == ["train-01"]


def test_filters_apply_to_cached_list(tmp_path, rows):
    cache_dir = tmp_path / "cache"
    path = write_config(tmp_path, CACHE.format(dir=cache_dir))
    dummy, plugin = parse(path, FakeClient(rows))
    plugin.update_cache_if_changed()
    # Same file name, narrower filters: the cached (unfiltered) list answers, filtered now.
    path = write_config(tmp_path, CACHE.format(dir=cache_dir) + "labels: [notebook]\n")
    inventory, dummy = parse(path, NoClient())
    assert sorted(inventory.hosts) == ["notebook"]


# --------------------------------------------------------------------------------------------------------------------
# pinned host keys (known_hosts_dir)
# --------------------------------------------------------------------------------------------------------------------

def test_each_instance_gets_its_own_known_hosts_file(tmp_path, rows):
    inventory, dummy = parse(write_config(tmp_path), FakeClient(rows))
    folder = tmp_path / "home" / ".local" / "state" / "voltx-vastai" / "known_hosts"
    assert folder.is_dir() and (folder.stat().st_mode & 0o777) == 0o700
    hv = hostvars(inventory, "train-01")
    assert hv["vastai_known_hosts_file"] == str(folder / "28765432")
    assert hv["ansible_ssh_common_args"] == (
        "-o UserKnownHostsFile=%s -o StrictHostKeyChecking=accept-new" % (folder / "28765432"))
    assert hv["ansible_host_key_checking"] is True
    files = set(hostvars(inventory, name)["vastai_known_hosts_file"] for name in inventory.hosts)
    assert len(files) == len(inventory.hosts)


def test_known_hosts_dir_option_and_env(tmp_path, rows, monkeypatch):
    inventory, dummy = parse(write_config(tmp_path, "known_hosts_dir: %s/pins\n" % tmp_path), FakeClient(rows))
    assert hostvars(inventory, "notebook")["vastai_known_hosts_file"].startswith(str(tmp_path / "pins") + os.sep)
    monkeypatch.setenv("VOLTX_VASTAI_KNOWN_HOSTS_DIR", str(tmp_path / "from env"))
    inventory, dummy = parse(write_config(tmp_path), FakeClient(rows))
    hv = hostvars(inventory, "train-01")
    # A path with a space stays one argument when Ansible splits the ssh arguments.
    assert "UserKnownHostsFile='%s'" % (tmp_path / "from env" / "28765432") in hv["ansible_ssh_common_args"]


def test_empty_known_hosts_dir_pins_nothing(tmp_path, rows):
    inventory, dummy = parse(write_config(tmp_path, "known_hosts_dir: ''\n"), FakeClient(rows))
    hv = hostvars(inventory, "train-01")
    assert not {"vastai_known_hosts_file", "ansible_ssh_common_args", "ansible_host_key_checking"} & set(hv)


def test_known_hosts_hostvars_without_id(plugin_module):
    assert plugin_module.known_hosts_hostvars("/pins", None) == {}
    assert plugin_module.known_hosts_hostvars("", 7) == {}
