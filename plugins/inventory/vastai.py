# -*- coding: utf-8 -*-
# Copyright (c) 2026, voltx engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: vastai
short_description: Vast.ai instances as an inventory source
version_added: 1.0.0
description:
  - Lists the instances of one Vast.ai account (C(GET /api/v1/instances/), every page) and adds one host per instance.
  - Uses a YAML configuration file whose name ends with C(vastai.yml) or C(vastai.yaml).
  - The API key is read as the collection's modules read it, never from this file, from E(VAST_API_KEY), then the
    key files of the C(vastai) CLI, in the CLI's order, the 2FA session key C($XDG_CONFIG_HOME/vastai/vast_tfa_key),
    C($XDG_CONFIG_HOME/vastai/vast_api_key) (C(XDG_CONFIG_HOME) defaults to C(~/.config)) and C(~/.vast_api_key).
    So the inventory lists the account the playbooks rent on. When Vast.ai refuses the 2FA session key as expired,
    the request is sent once more with the next key file's key, as the CLI does. The key is sent only in the
    C(Authorization) header; it is never cached, logged or put into host variables. When no key is found anywhere,
    the inventory is empty and one warning says where to put the key.
  - The host name is the instance label when it is one of the labels this collection rents under (see
    O(instance_label)), otherwise C(vastai-<id>). A label from the API is data, and the host name becomes a directory
    on the controller (the harvest role's C(harvest/<host>/)), so a label such as C(x/../../escape) or one holding
    C({{), C(/), whitespace or C($() never names a host; C(vastai_label) still holds it as the API sent it.
  - When two or more listed instances would get the same host name (for example two instances with one label), every one
    of them gets the suffix C(-<id>) and a warning names them; no instance is ever dropped.
  - By default every instance of the account is added, whatever its status, so a play can find the instance it rented
    while it is still loading, after it exited or while its host is offline; O(statuses) narrows the list.
  - The host variable C(vastai_status) is the instance's C(actual_status), stripped and lower-cased, or C(provisioning)
    while Vast.ai still reports it as null (the same value the modules return as C(status)).
  - Every host is in the group C(vastai) and in C(vastai_<vastai_status>) (C(vastai_running), C(vastai_loading),
    C(vastai_exited), C(vastai_provisioning), ...), so a play can target just the running ones (C(vastai_running)).
  - C(ansible_host), C(ansible_port) and C(ansible_user=root) are set the way C(vastai ssh-url) derives them, by the
    same function the modules use for their C(ssh_host) and C(ssh_port); direct SSH (C(public_ipaddr) and the host port
    mapped to C(22/tcp), the IPv4 entry first) when the instance has that mapping, otherwise the Vast.ai SSH proxy
    (C(ssh_host), C(ssh_port), plus one when the image runtype contains C(jupyter)). An instance with neither
    still appears, without C(ansible_host) and C(ansible_port).
  - C(ansible_pipelining=true) and C(ansible_python_interpreter=/usr/bin/python3) (where the C(voltx.vastai.campaign)
    bootstrap installs python3), so a task costs one SSH round trip without this collection's C(ansible.cfg) and no
    interpreter discovery runs; set either in your C(host_vars) to change it.
  - Numeric host variables (ids, ports, prices, sizes, dates) are numbers even when the API sends them as strings.
  - Every value that comes from the API is marked unsafe, so a label that holds a Jinja2 expression (say a C(pipe) lookup
    between C({{) and C(}})) is never templated.
  - Host keys are pinned per instance, trust on first use; see O(known_hosts_dir).
  - The group C(all) gets C(vastai_inventory_account), the API URL this inventory lists and a SHA-256 digest of its
    key (never the key), so that C(playbooks/reap.yml) can refuse to reap another account than the one it harvests.
  - When the API cannot be read (a rate limit or an outage outlasting O(retries)), the inventory stays empty but for
    C(vastai_inventory_unreadable) in the group C(all), the reason, so that the playbooks say the API, not the
    inventory, is the problem.
  - With O(cache=true) the instance list is cached (only the fields this plugin uses; never the API key, the Jupyter
    token or the instance environment).
author:
  - voltx engineers (@voltx)
requirements:
  - requests
extends_documentation_fragment:
  - constructed
  - inventory_cache
options:
  plugin:
    description: Marks this file as a configuration of this plugin.
    required: true
    type: str
    choices: [voltx.vastai.vastai]
  api_url:
    description:
      - Base URL of the Vast.ai API (no C(/api/v0) suffix). May be a template; like O(known_hosts_dir) it sees the
        extra variables and C(inventory_dir), the directory of this configuration file.
    type: str
    default: https://console.vast.ai
    env:
      - name: VAST_API_URL
  request_timeout:
    description:
      - Timeout in seconds of one HTTP request. Rate-limited and failed requests are retried by the client.
    type: float
    default: 30.0
  retries:
    description:
      - How many times the instance list request is retried after HTTP 429, 502, 503, 504, a connection error or a
        timeout, with exponential backoff and jitter (a C(Retry-After) header of up to 60 seconds is honoured).
    type: int
    default: 4
  statuses:
    description:
      - Only instances whose status (C(vastai_status)) is one of these values are added; case does not matter.
      - Values seen are C(running), C(loading), C(created), C(exited), C(stopped), C(frozen), C(rebooting),
        C(scheduling), C(unknown), C(offline); use C(provisioning) for instances whose C(actual_status) is still null.
      - An empty list (the default) adds every instance, whatever its status; the C(vastai_<status>) groups still tell
        them apart. V([running, loading]) keeps the ones a play can (soon) connect to.
    type: list
    elements: str
    default: []
  labels:
    description:
      - Only instances whose label matches one of these names or shell-style patterns (C(train-*), C(run-0?)) are
        added; matching is case-sensitive.
      - An unlabeled instance is matched as the empty string, so C(*) includes it and C("") selects unlabeled ones.
      - An empty list (the default) adds every instance.
    type: list
    elements: str
    default: []
  instance_label:
    description:
      - The label of the instance this collection's playbooks rent and manage; its identity, so a re-run finds the
        instance it rented and rents nothing.
      - Every host and the implicit C(localhost) get it as C(vastai_instance_label) (a variable of the group C(all)),
        which is where the rent, harvest and teardown plays read it; the host with this label is put in the group
        C(training), which the collection's step playbooks target (empty while no such instance exists).
      - This option is the one place the label is set. With O(instances), it is not used.
      - Taken literally, never templated. 1 to 64 letters, digits, C(.), C(_) or C(-), starting with a letter or a
        digit, without C(..), so no whitespace, C(/), Jinja2 (C({{), C({%)) or shell metacharacters such as C($(). Any
        other value fails the inventory, so nothing is rented under it.
    type: str
    default: volt-x-training
  instances:
    description:
      - A campaign of several instances, one entry each, rented, prepared, trained, harvested and destroyed by the same
        playbooks in parallel (one Ansible fork per instance); each has its own label, its own harvest directory
        (the harvest role's C(harvest/<label>/)) and its own budget (C(campaign_budget_usd) is per host).
      - Every entry is a host named by its label, even before its instance is rented, in the group C(campaign); the
        ones whose instance exists are in C(training) as well, with the instance's C(vastai_*) variables. Each host
        gets C(vastai_instance_label) (its label) and the entry's O(instances[].vars) as host variables, which
        override C(group_vars); a C(host_vars/<label>.yml) file next to this one and C(--extra-vars) override them.
      - C(playbooks/rent.yml) rents one instance per host of C(campaign) that has none yet, and none twice (an
        instance is found by its label first).
      - When set, O(instance_label) is not used and the group C(all) gets no C(vastai_instance_label).
    type: list
    elements: dict
    default: []
    suboptions:
      label:
        description:
          - The instance's label, its identity and its host name. Unique in the list; keep it starting with the
            campaign role's C(campaign_owner_label_prefix) (C(volt-x-)), which the rent checks and the reaper needs.
          - Taken literally, and held to the characters of O(instance_label).
        type: str
        required: true
      vars:
        description:
          - Host variables of this instance only, e.g. another C(campaign_stages) (stages, learning rates),
            C(campaign_budget_usd) or C(vastai_gpu_name).
        type: dict
        default: {}
  known_hosts_dir:
    description:
      - Directory of the pinned SSH host keys, one known-hosts file per instance, named by the instance id
        (C(<known_hosts_dir>/<id>)). It is created (mode 0700) when missing.
      - Every host gets C(vastai_known_hosts_file), C(ansible_host_key_checking=true) (so a C(host_key_checking = False)
        elsewhere cannot turn the pin off) and C(ansible_ssh_common_args) with
        C(-o UserKnownHostsFile=<that file> -o StrictHostKeyChecking=accept-new), so the first connection records
        the instance's host key and every later one (Ansible's and the collection's own C(ssh)/C(rsync)) must
        present the same key; a changed key is refused by ssh with C(REMOTE HOST IDENTIFICATION HAS CHANGED).
        Vast.ai reuses public ports for new instances, which is why the file is per instance and not per address.
      - The harvest role's teardown deletes the file once it has destroyed the instance.
      - An empty value sets neither variable (ssh then uses your own C(~/.ssh/known_hosts)). May be a template (see
        O(api_url)).
    type: str
    default: ~/.local/state/voltx-vastai/known_hosts
    env:
      - name: VOLTX_VASTAI_KNOWN_HOSTS_DIR
"""

EXAMPLES = r"""
# Minimal: file inventories/prod.vastai.yml, key in the environment (VAST_API_KEY) or the vastai CLI key file.
plugin: voltx.vastai.vastai

---
# Only the training instances that are up or coming up, against another API endpoint.
plugin: voltx.vastai.vastai
api_url: http://127.0.0.1:8081
statuses: [running, loading]
labels:
  - train-*

---
# Every instance (the default); plays pick by status group, e.g. "hosts: vastai_running" or
# "hosts: vastai_exited:vastai_offline" for the ones to inspect or destroy. A composed group on the status variable:
plugin: voltx.vastai.vastai
groups:
  not_up: vastai_status != 'running'

---
# Cache the instance list for five minutes.
plugin: voltx.vastai.vastai
cache: true
cache_plugin: ansible.builtin.jsonfile
cache_connection: ~/.cache/ansible/vastai
cache_timeout: 300

---
# Groups by GPU model and count, e.g. "gpu_RTX_5090" and "gpus_8", a group of cheap hosts, and a composed variable.
plugin: voltx.vastai.vastai
keyed_groups:
  - key: vastai_gpu_name
    prefix: gpu
  - key: vastai_num_gpus | string
    prefix: gpus
  - key: vastai_geolocation | default('unknown', true)
    prefix: geo
groups:
  cheap: vastai_dph_total is not none and vastai_dph_total < 0.5
compose:
  # Reach the instance through the Vast.ai proxy even when it has a direct port.
  ansible_host: vastai_ssh_host
  ansible_port: vastai_proxy_ssh_port

---
# A campaign of three instances: the same curriculum at three learning rates, one with a budget of its own.
# Hosts volt-x-lr1e4, volt-x-lr3e4 and volt-x-lr1e3, in the group `campaign` (rented or not) and `training` (rented).
plugin: voltx.vastai.vastai
instances:
  - label: volt-x-lr1e4
  - label: volt-x-lr3e4
    vars:
      campaign_stages:
        - name: "all data (lr=3e-4)"
          data: [data/code_training_combined.jsonl]
          lr: "3e-4"
          warmup: 1000
          epochs: 10
          output: checkpoints/scaled_vfn.safetensors
          log: phase21_stage1.log
  - label: volt-x-lr1e3
    vars:
      campaign_budget_usd: 5

# Host variables this plugin sets (values are examples; a field the API leaves out is null):
#   ansible_host: "203.0.113.7"             # only when an SSH endpoint is known
#   ansible_port: 41022                     # only when an SSH endpoint is known
#   ansible_user: "root"
#   ansible_pipelining: true
#   ansible_python_interpreter: "/usr/bin/python3"
#   vastai_id: 28765432
#   vastai_label: "train-01"                # null when unlabeled
#   vastai_status: "running"                # actual_status lower-cased; "provisioning" while it is null
#   vastai_intended_status: "running"
#   vastai_cur_state: "running"
#   vastai_status_msg: "success, running vastai/base-image_cuda-12.8.1-auto/ssh"
#   vastai_ssh_mode: "direct"               # "direct", "proxy" or null (no SSH endpoint yet)
#   vastai_ssh_host: "ssh5.vast.ai"         # the proxy host
#   vastai_ssh_port: 31234                  # the API's ssh_port, unchanged
#   vastai_proxy_ssh_port: 31234            # SSH port on the proxy: ssh_port, plus one for a jupyter runtype
#   vastai_public_ipaddr: "203.0.113.7"     # whitespace stripped
#   vastai_direct_ssh_port: 41022           # host port mapped to 22/tcp; null without a mapping
#   vastai_ports: {"22/tcp": [{"HostIp": "0.0.0.0", "HostPort": "41022"}]}
#   vastai_image_uuid: "vastai/base-image:cuda-12.8.1-auto"
#   vastai_image_runtype: "ssh_direc ssh_proxy"
#   vastai_gpu_name: "RTX 5090"
#   vastai_num_gpus: 1
#   vastai_gpu_ram: 32607                   # MB per GPU
#   vastai_cuda_max_good: 12.9
#   vastai_driver_version: "575.57.08"
#   vastai_cpu_cores_effective: 32.0
#   vastai_cpu_ram: 773819                  # MB
#   vastai_disk_space: 250.0                # GB
#   vastai_dph_total: 0.4420833             # USD per hour
#   vastai_is_bid: false
#   vastai_machine_id: 38411
#   vastai_host_id: 201334
#   vastai_geolocation: "Texas, US"
#   vastai_reliability: 0.9975              # reliability2
#   vastai_inet_up: 2400.5                  # Mb/s
#   vastai_inet_down: 4500.2                # Mb/s
#   vastai_start_date: 1795540000.12        # epoch seconds
#   vastai_end_date: 1800000000.0           # epoch seconds, end of the host's listing
#   vastai_known_hosts_file: "/home/me/.local/state/voltx-vastai/known_hosts/28765432"   # see known_hosts_dir
#   ansible_ssh_common_args: "-o UserKnownHostsFile=/home/me/.local/state/voltx-vastai/known_hosts/28765432
#                             -o StrictHostKeyChecking=accept-new"
#   ansible_host_key_checking: true
"""

import fnmatch
import hashlib
import os
import shlex

from ansible.errors import AnsibleError
from ansible.module_utils.common.text.converters import to_native
from ansible.plugins.inventory import BaseInventoryPlugin, Cacheable, Constructable
from ansible.utils.unsafe_proxy import wrap_var

from ansible_collections.voltx.vastai.plugins.module_utils._client import (
    RetryPolicy,
    VastClient,
    VastConfigError,
    VastError,
    VastRateLimitError,
    VastTransportError,
    account_id,
    resolve_api_key,
)
from ansible_collections.voltx.vastai.plugins.module_utils._endpoint import (
    SSH_USER,
    direct_ssh_port,
    instance_status,
    proxy_ssh_endpoint,
    public_ipaddr,
    ssh_endpoint,
    to_float,
    to_int,
    to_port,
)
from ansible_collections.voltx.vastai.plugins.module_utils._instance import label_problem


GROUP_ALL = "vastai"
# The hosts of the option instances, rented or not: the hosts pattern of playbooks/rent.yml in a campaign.
CAMPAIGN_GROUP = "campaign"
# The group of the instance labelled instance_label: the hosts pattern of the collection's step playbooks.
INSTANCE_GROUP = "training"


def _strip(value):
    if isinstance(value, str):
        value = value.strip()
        return value or None
    return value


# Host variable name (without the vastai_ prefix) -> (field of the API row, conversion). Numbers are made numbers
# here (the API sends some as strings), so that comparisons such as ``vastai_dph_total < 0.5`` in ``groups`` work.
_COPIED_FIELDS = (
    ("id", "id", to_int),
    ("label", "label", _strip),
    ("intended_status", "intended_status", _strip),
    ("cur_state", "cur_state", _strip),
    ("status_msg", "status_msg", _strip),
    ("ssh_host", "ssh_host", _strip),
    ("ssh_port", "ssh_port", to_port),
    ("ports", "ports", _strip),
    ("image_uuid", "image_uuid", _strip),
    ("image_runtype", "image_runtype", _strip),
    ("gpu_name", "gpu_name", _strip),
    ("num_gpus", "num_gpus", to_int),
    ("gpu_ram", "gpu_ram", to_int),
    ("cuda_max_good", "cuda_max_good", to_float),
    ("driver_version", "driver_version", _strip),
    ("cpu_cores_effective", "cpu_cores_effective", to_float),
    ("cpu_ram", "cpu_ram", to_int),
    ("disk_space", "disk_space", to_float),
    ("dph_total", "dph_total", to_float),
    ("is_bid", "is_bid", _strip),
    ("machine_id", "machine_id", to_int),
    ("host_id", "host_id", to_int),
    ("geolocation", "geolocation", _strip),
    ("reliability", "reliability2", to_float),
    ("inet_up", "inet_up", to_float),
    ("inet_down", "inet_down", to_float),
    ("start_date", "start_date", to_float),
    ("end_date", "end_date", to_float),
)

# The only fields of an API row this plugin reads; the cache keeps these and nothing else
# (no jupyter_token, no extra_env, no onstart).
CACHED_FIELDS = tuple(sorted(set(field for dummy, field, dummy2 in _COPIED_FIELDS)
                             | {"actual_status", "public_ipaddr"}))


# How Ansible talks to every instance, also where this checkout's ansible.cfg is not read (an installed collection):
# one SSH round trip per task (pipelining), and the python3 that voltx.vastai.campaign's bootstrap installs, without
# interpreter discovery's extra round trip and its warning.
CONNECTION_HOSTVARS = {"ansible_pipelining": True, "ansible_python_interpreter": "/usr/bin/python3"}


def instance_to_hostvars(instance):
    """Turn one row of ``GET /api/v1/instances/`` into the host variables of its host (plain values, not yet unsafe).

    The endpoint and the status come from module_utils._endpoint, the functions the modules use, so
    ``ansible_host``/``ansible_port``/``vastai_status`` always equal the modules' ``ssh_host``/``ssh_port``/``status``.
    """
    hostvars = {}
    for name, field, convert in _COPIED_FIELDS:
        hostvars["vastai_" + name] = convert(instance.get(field))
    hostvars["vastai_status"] = instance_status(instance)
    hostvars["vastai_public_ipaddr"] = public_ipaddr(instance)
    hostvars["vastai_direct_ssh_port"] = direct_ssh_port(instance)
    hostvars["vastai_proxy_ssh_port"] = proxy_ssh_endpoint(instance)[1]

    host, port, mode = ssh_endpoint(instance)
    hostvars["vastai_ssh_mode"] = mode
    hostvars["ansible_user"] = SSH_USER
    hostvars.update(CONNECTION_HOSTVARS)
    if host is not None:
        hostvars["ansible_host"] = host
        hostvars["ansible_port"] = port
    return hostvars


def known_hosts_hostvars(known_hosts_dir, instance_id):
    """The host variables that pin an instance's SSH host key in its own known-hosts file (trust on first use).

    ``{}`` when ``known_hosts_dir`` is empty or the instance has no id.
    """
    if not known_hosts_dir or instance_id is None or not str(instance_id).strip():
        return {}
    path = os.path.join(known_hosts_dir, str(instance_id).strip())
    return {
        "vastai_known_hosts_file": path,
        "ansible_ssh_common_args": "-o UserKnownHostsFile=%s -o StrictHostKeyChecking=accept-new" % shlex.quote(path),
        # Beats host_key_checking=False from a config or the environment (ansible-runner sets it), which would put
        # StrictHostKeyChecking=no first on ssh's command line, and ssh keeps the first value.
        "ansible_host_key_checking": True,
    }


def default_host_name(instance):
    """The label when it is a safe one (label_problem): the host name becomes a path on the controller."""
    label = _strip(instance.get("label"))
    if label and label_problem(label) is None:
        return label
    return "vastai-%s" % instance.get("id")


def assign_host_names(instances):
    """Return ``[(host_name, instance), ...]`` with unique names, and the list of names that collided.

    Every instance that shares a name with another gets ``-<id>`` appended; nothing is dropped.
    """
    names = [default_host_name(instance) for instance in instances]
    collided = []
    for dummy in range(5):
        seen = {}
        for index, name in enumerate(names):
            seen.setdefault(name, []).append(index)
        duplicates = dict((name, indexes) for name, indexes in seen.items() if len(indexes) > 1)
        if not duplicates:
            return list(zip(names, instances)), collided
        for name, indexes in sorted(duplicates.items()):
            collided.append((name, [instances[i].get("id") for i in indexes]))
            for i in indexes:
                names[i] = "%s-%s" % (name, instances[i].get("id"))
    raise AnsibleError("Could not give the Vast.ai instances unique host names; colliding names: %s"
                       % ", ".join(sorted(set(name for name in names if names.count(name) > 1))))


def declared_instances(entries):
    """The option instances checked: ``[(label, vars), ...]`` in their order; an AnsibleError names what is wrong."""
    declared = []
    for index, entry in enumerate(entries or []):
        where = "instances[%d]" % index
        if not isinstance(entry, dict):
            raise AnsibleError("Vast.ai inventory: %s must be a mapping with a label, got %r" % (where, entry))
        unknown = sorted(set(entry) - {"label", "vars"})
        if unknown:
            raise AnsibleError("Vast.ai inventory: %s has unknown keys %s (only label and vars)"
                               % (where, ", ".join(unknown)))
        label = entry.get("label")
        if label_problem(label):
            raise AnsibleError("Vast.ai inventory: %s.label: %s. Nothing was rented." % (where, label_problem(label)))
        host_vars = entry.get("vars") or {}
        if not isinstance(host_vars, dict):
            raise AnsibleError("Vast.ai inventory: %s.vars (%s) must be a mapping" % (where, label))
        if label in [name for name, dummy in declared]:
            raise AnsibleError("Vast.ai inventory: the label %s is declared twice in instances; each instance needs "
                               "its own" % label)
        declared.append((label, host_vars))
    return declared


def slim_instance(instance):
    """The part of an API row that is cached: the fields this plugin reads, nothing else."""
    return dict((field, instance.get(field)) for field in CACHED_FIELDS if field in instance)


class ApiUnreadable(Exception):
    """The API did not answer the listing (rate limit, outage): the account's instances are unknown."""


class InventoryModule(BaseInventoryPlugin, Constructable, Cacheable):
    NAME = "voltx.vastai.vastai"

    def verify_file(self, path):
        """Accept only files named ``*vastai.yml`` / ``*vastai.yaml``."""
        return super().verify_file(path) and path.endswith(("vastai.yml", "vastai.yaml"))

    # -- options ---------------------------------------------------------------------------------------------------

    def _templated_option(self, name):
        value = self.get_option(name)
        if isinstance(value, str) and value:
            value = self.templar.template(value)
        return value

    def _api_url(self):
        return self._templated_option("api_url") or None

    def _known_hosts_dir(self):
        """The option known_hosts_dir, created (0700) on first use; '' when pinning is off."""
        path = self._templated_option("known_hosts_dir")
        if not path:
            return ""
        path = os.path.abspath(os.path.expanduser(path))
        if not os.path.isdir(path):
            try:
                os.makedirs(path, mode=0o700, exist_ok=True)
            except OSError as e:
                raise AnsibleError("Vast.ai inventory: cannot create known_hosts_dir %s: %s" % (path, to_native(e))) from e
        return path

    # -- fetching --------------------------------------------------------------------------------------------------

    def _api_key(self):
        """The key, or None after one warning line when none is set anywhere.

        A missing key leaves the inventory empty instead of failing to parse it: a parse failure is followed by every
        other inventory plugin's attempt at the file, which buries the one line that says where the key goes. The
        playbooks still fail, at their first step that needs the instance or the API.
        """
        try:
            return resolve_api_key()[0]
        except VastConfigError as e:
            self.display.warning("Vast.ai inventory: %s" % to_native(e))
            return None

    def _make_client(self):
        """Build the API client from the options; it reads the key itself, as the modules' client does."""
        retries = self.get_option("retries")
        if retries < 0:
            raise AnsibleError("Vast.ai inventory: retries must be 0 or more, got %s" % retries)
        try:
            return VastClient(api_url=self._api_url(), timeout=self.get_option("request_timeout"),
                              retry_policy=RetryPolicy(attempts=retries + 1))
        except VastError as e:
            raise AnsibleError("Vast.ai inventory: %s" % to_native(e)) from e

    def _fetch(self, client):
        """All instances of the account, reduced to the fields this plugin uses."""
        try:
            instances = client.list_instances()
        except (VastRateLimitError, VastTransportError) as e:
            raise ApiUnreadable("listing instances failed: %s" % to_native(e)) from e
        except VastError as e:
            raise AnsibleError("Vast.ai inventory: listing instances failed: %s" % to_native(e)) from e
        if not isinstance(instances, list):
            raise AnsibleError("Vast.ai inventory: listing instances returned %s, not a list" % type(instances).__name__)
        return [slim_instance(instance) for instance in instances if isinstance(instance, dict)]

    def _cache_key(self, path):
        # The file's key plus the endpoint, so pointing the same file at another API (an emulator) never reads
        # the other one's cache. The API key takes no part in it.
        url = self._api_url() or ""
        return "%s_%s" % (self.get_cache_key(path), hashlib.sha256(url.encode("utf-8")).hexdigest()[:12])

    def _get_instances(self, path, cache):
        """The instance list, from the cache when allowed and present, else from the API (then cached)."""
        use_cache = self.get_option("cache")
        read_cache = use_cache and cache
        update_cache = use_cache and not cache
        cache_key = self._cache_key(path) if use_cache else None

        if read_cache:
            try:
                return self._cache[cache_key]
            except KeyError:
                update_cache = True

        if self._api_key() is None:
            return []
        instances = self._fetch(self._make_client())
        if update_cache:
            self._cache[cache_key] = instances
        return instances

    # -- populating ------------------------------------------------------------------------------------------------

    def _select(self, instances):
        # Compared the way instance_status() normalises the API's value, so "Running" or " running" still match.
        statuses = set(str(s).strip().lower() for s in self.get_option("statuses") or [])
        patterns = self.get_option("labels") or []
        selected = {}
        for instance in instances:
            if statuses and instance_status(instance) not in statuses:
                continue
            if patterns:
                label = _strip(instance.get("label")) or ""
                if not any(fnmatch.fnmatchcase(label, pattern) for pattern in patterns):
                    continue
            # A page boundary moving under us can list one instance twice; keep the last copy.
            selected[instance.get("id")] = instance
        return list(selected.values())

    def _populate(self, instances):
        """Add the (already fetched) instances to the inventory."""
        strict = self.get_option("strict")
        compose = self.get_option("compose")
        groups = self.get_option("groups")
        keyed_groups = self.get_option("keyed_groups")

        self.inventory.add_group(GROUP_ALL)
        instance_group = self.inventory.add_group(INSTANCE_GROUP)
        declared = declared_instances(self.get_option("instances"))
        if declared:
            managed_labels = set(label for label, dummy in declared)
        else:
            instance_label = self.get_option("instance_label")
            if label_problem(instance_label):
                raise AnsibleError("Vast.ai inventory: instance_label: %s. Nothing was rented."
                                   % label_problem(instance_label))
            managed_labels = {instance_label}
            self.inventory.set_variable("all", "vastai_instance_label", wrap_var(instance_label))
        named, collided = assign_host_names(self._select(instances))
        for name, ids in collided:
            self.display.warning("Vast.ai inventory: instances %s share the host name %s; each is named %s-<id>"
                                 % (", ".join(str(i) for i in ids), name, name))

        for name, instance in named:
            host = self.inventory.add_host(wrap_var(name), group=GROUP_ALL)
            status_group = self.inventory.add_group(self._sanitize_group_name("%s_%s" % (GROUP_ALL, instance_status(instance))))
            self.inventory.add_child(status_group, host)

            hostvars = wrap_var(dict(instance_to_hostvars(instance),
                                     **known_hosts_hostvars(self._known_hosts_dir(), instance.get("id"))))
            for key, value in hostvars.items():
                self.inventory.set_variable(host, key, value)

            if _strip(instance.get("label")) in managed_labels:
                self.inventory.add_child(instance_group, host)
            self._set_composite_vars(compose, self.inventory.get_host(host).get_vars(), host, strict=strict)
            self._add_host_to_composed_groups(groups, hostvars, host, strict=strict)
            self._add_host_to_keyed_groups(keyed_groups, hostvars, host, strict=strict)

        self._declare(declared)

    def _declare(self, declared):
        """The campaign's hosts: each label of the option instances, rented or not, with its own variables.

        A label without an instance yet is a host without ``ansible_host`` (outside ``vastai`` and ``training``),
        so that playbooks/rent.yml can rent it as a host of ``campaign``, in parallel with the others.
        """
        if not declared:
            return
        campaign_group = self.inventory.add_group(CAMPAIGN_GROUP)
        for label, host_vars in declared:
            host = self.inventory.add_host(label, group=campaign_group)
            self.inventory.set_variable(host, "vastai_instance_label", wrap_var(label))
            for key, value in host_vars.items():
                self.inventory.set_variable(host, key, value)

    def parse(self, inventory, loader, path, cache=True):
        super().parse(inventory, loader, path, cache=cache)
        self._read_config_data(path)
        # Let options such as api_url refer to --extra-vars, and to files next to this configuration.
        self.templar.available_variables = dict(self._vars, inventory_dir=os.path.dirname(os.path.abspath(path)))
        try:
            instances = self._get_instances(path, cache)
        except ApiUnreadable as e:
            # Not a parse failure: that warning is buried among every other plugin's attempt at the file, and the
            # playbooks could only guess that this inventory was meant. They read the reason here instead.
            self.display.warning("Vast.ai inventory: %s" % e)
            self.inventory.set_variable("all", "vastai_inventory_unreadable", wrap_var(to_native(e)))
            return
        self._populate(instances)
        account = self._account()
        if account:
            self.inventory.set_variable("all", "vastai_inventory_account", wrap_var(account))

    def _account(self):
        """account_id() of the endpoint and key this inventory lists with; None without a key (already warned)."""
        try:
            return account_id(self._api_url(), resolve_api_key()[0])
        except VastConfigError:
            return None
