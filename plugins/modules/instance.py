#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, voltx engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: instance
short_description: Rent, start, stop and destroy a Vast.ai instance identified by its label
version_added: 1.0.0
description:
  - Manages one Vast.ai instance identified by O(label). A second run with the same label rents nothing.
  - To rent, the module searches offers with the filters (or takes O(offer_id)), re-checks each offer on the
    controller, and tries the cheapest first. An offer taken meanwhile, an instance stuck loading past
    O(loading_timeout), an instance that fails to start, or a contract priced above O(max_dph) is destroyed
    and the next offer is tried, up to O(max_attempts) offers. Every attempt is reported in RV(attempts).
  - Renting is never retried blindly. When the create request fails in transit, the module looks the label up
    first, so it never pays twice. When Vast.ai answers every create with HTTP 502/503 (an outage), the module
    fails within seconds (the client's O(retries), the label looked up before each), saying whether anything was
    rented.
  - With O(wait=true) the module returns once the instance is running B(and) its SSH port answers with an
    SSH banner, all within O(wait_timeout).
author:
  - voltx engineers (@voltx)
options:
  state:
    description:
      - V(present) ensures the instance exists (rents it when missing).
      - V(running) ensures it exists and is running (starts a stopped one).
      - V(stopped) ensures it exists and is stopped (a missing one is rented, then stopped).
      - V(absent) destroys every instance carrying O(label); billing for it stops.
    type: str
    default: present
    choices: [present, running, stopped, absent]
  label:
    description:
      - Label that identifies the instance. Must not be empty.
      - Except with V(absent), 1 to 64 letters, digits, C(.), C(_) or C(-), starting with a letter or a digit, without
        C(..), so no whitespace, C(/), Jinja2 (C({{), C({%)) or shell metacharacters; checked before any request.
      - When several instances carry the label the module fails and lists their ids (except for V(absent),
        which destroys all of them).
    type: str
    required: true
  offer_id:
    description:
      - Rent this offer instead of searching. Only this offer is tried.
      - Cannot be combined with the search filters except O(max_dph), which is still checked on the contract.
    type: int
  image:
    description:
      - Docker image to run, for example C(nvidia/cuda:12.8.0-devel-ubuntu22.04).
      - Required when an instance has to be rented. It must follow docker's reference grammar
        (C([registry[:port]/]name[:tag][@digest]), name in lower case; Vast.ai's C(:@vastai-automatic-tag) too); this
        is checked before any request.
      - When Vast.ai cannot pull it (the name or tag does not exist), the module destroys that instance and fails
        naming the image and the pull error, without renting again.
    type: str
  disk_gb:
    description:
      - Disk to allocate in GB (at least 8). Defaults to O(min_disk_gb) when set, else 10.
      - Offers must have at least this much free disk, and prices are compared with this much storage included.
    type: float
  onstart:
    description:
      - Shell script run when the container starts (at most 4048 characters).
    type: str
  env:
    description:
      - Environment variables for the container. Docker options use the CLI's keys, for example the key
        C(-p 8080:8080) with the value C(1) publishes port 8080.
    type: dict
  ssh_public_key:
    description:
      - Public key line (for example the content of C(~/.ssh/id_ed25519.pub)). It is added to the account's SSH
        keys when missing and attached to a newly rented instance, so the first login works.
    type: str
  runtype:
    description:
      - How the instance is reached. V(ssh_direct) (direct SSH to the host plus the proxy, sent as
        C(ssh_direc ssh_proxy) like the CLI), V(ssh_proxy) (through Vast's SSH proxy) or V(ssh).
    type: str
    default: ssh_direct
    choices: [ssh_direct, ssh_proxy, ssh]
  bid_price:
    description:
      - Bid in dollars per hour for an interruptible instance. Required with O(rental_type=interruptible) and
        only valid with it.
    type: float
  cancel_unavail:
    description:
      - Ask Vast.ai to fail the rental when the machine cannot start the container now, instead of creating a
        stopped, queued instance.
    type: bool
    default: true
  wait:
    description:
      - Wait until the instance is running and its SSH port answers.
    type: bool
    default: true
  wait_timeout:
    description:
      - Total seconds to wait for a usable instance, over all attempts.
    type: int
    default: 1800
  loading_timeout:
    description:
      - Seconds one rented instance may take to become reachable. Past it the instance is destroyed and the
        next offer is tried.
    type: int
    default: 600
  blocklist_reason:
    description:
      - With O(state=absent), put the machine of every destroyed instance on the persistent blocklist
        (O(blocklist_file)) with this reason and today's date, so that no later rent or search picks it again.
    type: str
  ledger_file:
    description:
      - With O(state=absent), add every destroyed instance to this campaign ledger on the controller (a JSON
        object whose C(instances) list holds C(id), C(label), C(dph), C(start_time) and C(end_time) per instance,
        each once), so that what it cost is still counted once the API has forgotten it. The harvest role keeps
        it as C(campaign.json) in its harvest directory.
    type: path
  max_attempts:
    description:
      - Maximum number of create attempts (offers tried).
    type: int
    default: 3
  poll_interval:
    description:
      - Seconds between two status polls while waiting.
    type: float
    default: 5.0
extends_documentation_fragment:
  - voltx.vastai.vastai
  - voltx.vastai.vastai.offer_filters
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: In check mode the module searches offers and reports the one it would rent, and changes nothing.
notes:
  - The filters of the quickstart guide's Step 1 map to O(gpu_name), O(num_gpus), O(min_host_cpu_cores),
    O(min_ram_gb), O(min_disk_gb), O(min_cuda), O(max_dph) and O(min_reliability).
  - Only a newly rented instance gets O(ssh_public_key) attached; an existing one is left as it is.
  - Interrupted (Ctrl-C) while it rents, the module fails naming the instance it rented, which bills, and how to
    destroy it; its action plugin prints that on ansible-playbook's output (Linux), which shows no more results.
"""

EXAMPLES = r"""
- name: Rent the guide's Step 1 instance and wait until SSH answers
  voltx.vastai.instance:
    label: voltx-train
    image: nvidia/cuda:12.8.0-devel-ubuntu22.04
    disk_gb: 250
    gpu_name: RTX 5090
    num_gpus: 1
    min_host_cpu_cores: 128
    min_ram_gb: 64
    min_cuda: 12.8
    max_dph: 0.20
    min_reliability: 0.95
    ssh_public_key: "{{ lookup('ansible.builtin.file', '~/.ssh/id_ed25519.pub') }}"
    wait_timeout: 1800
  register: rented

- name: Connect with the details
  ansible.builtin.debug:
    msg: "ssh -p {{ rented.instance.ssh_port }} {{ rented.instance.ssh_user }}@{{ rented.instance.ssh_host }}"

- name: Stop it (disk is kept and still billed)
  voltx.vastai.instance:
    label: voltx-train
    state: stopped

- name: Start it again and wait for SSH
  voltx.vastai.instance:
    label: voltx-train
    state: running

- name: Destroy it so billing stops
  voltx.vastai.instance:
    label: voltx-train
    state: absent
"""

RETURN = r"""
instance:
  description: The instance, or null for O(state=absent) and in check mode when one would be rented.
  returned: always
  type: dict
  contains:
    id:
      description: Instance id (the contract id).
      type: int
      sample: 28765432
    label:
      description: The label.
      type: str
      sample: voltx-train
    status:
      description:
        - The instance's C(actual_status), for example C(loading), C(running), C(exited); C(provisioning) while
          Vast.ai still reports it as null.
      type: str
      sample: running
    intended_status:
      description: What was asked for, C(running) or C(stopped).
      type: str
      sample: running
    status_msg:
      description: Vast.ai's free-text status message.
      type: str
    ssh_host:
      description: Host to SSH to (public IP for direct SSH, else the proxy host).
      type: str
      sample: 203.0.113.7
    ssh_port:
      description: Port to SSH to.
      type: int
      sample: 41022
    ssh_kind:
      description: C(direct) or C(proxy).
      type: str
      sample: direct
    ssh_user:
      description: Always C(root).
      type: str
      sample: root
    public_ipaddr:
      description: The host's public IP address.
      type: str
    dph_total:
      description: Contract price in dollars per hour, storage included.
      type: float
      sample: 0.19
    gpu_name:
      description: GPU model.
      type: str
      sample: RTX 5090
    num_gpus:
      description: Number of GPUs.
      type: int
      sample: 1
    machine_id:
      description: Physical machine id.
      type: int
    start_date:
      description: Start time, epoch seconds.
      type: float
    image:
      description: Image the instance runs.
      type: str
    disk_gb:
      description: Allocated disk in GB.
      type: float
    is_bid:
      description: Whether the instance is interruptible.
      type: bool
attempts:
  description:
    - One entry per create attempt, in order. C(outcome) is one of C(rented), C(offer_gone),
      C(stuck_loading_destroyed), C(over_price_destroyed), C(failed_destroyed), C(vanished),
      C(wait_timeout_destroyed), C(rate_limited), C(create_failed_not_found), C(image_pull_failed_destroyed), or
      C(would_rent) in check mode.
    - After C(image_pull_failed_destroyed) (the image cannot be pulled, its name or tag does not exist) the module
      fails at once, naming the image and Vast.ai's status message, and rents nothing more; the entry carries
      C(status_msg).
  returned: when an instance was (or would be) rented
  type: list
  elements: dict
  sample:
    - {offer_id: 111, outcome: offer_gone, dph_total: 0.15, instance_id: null}
    - {offer_id: 222, outcome: rented, dph_total: 0.18, instance_id: 28765432, contract_dph: 0.18}
offer:
  description: The offer rented (or that would be rented in check mode).
  returned: when an instance was (or would be) rented
  type: dict
query:
  description: The offer search query sent to the API.
  returned: when offers were searched
  type: dict
destroyed:
  description: Ids of the instances destroyed (or that would be in check mode) by O(state=absent).
  returned: when O(state=absent)
  type: list
  elements: int
  sample: [28765432]
blocklisted:
  description: Machine ids added to the blocklist (or that would be in check mode) by O(blocklist_reason).
  returned: when O(state=absent) and O(blocklist_reason) is set
  type: list
  elements: int
  sample: [38411]
ssh_key_added:
  description: Whether O(ssh_public_key) was added to the account's keys.
  returned: when O(ssh_public_key) is set and an instance was rented
  type: bool
"""

from ansible.module_utils.basic import AnsibleModule

from ..module_utils._base import VastModule, offer_filter_argument_spec, vast_argument_spec
from ..module_utils._blocklist import add_to_blocklist
from ..module_utils._client import (
    CREATE_TIMEOUT, VastError, VastOfferUnavailableError, VastRateLimitError, VastTransportError)
from ..module_utils._endpoint import instance_status, ssh_endpoint
from ..module_utils._ledger import record_instances
from ..module_utils._instance import (
    DISK_MIN_GB,
    IMAGE_EXAMPLE,
    ONSTART_MAX,
    OUTCOME_CREATE_UNCERTAIN,
    OUTCOME_IMAGE_FAILED,
    OUTCOME_OFFER_GONE,
    OUTCOME_RATE_LIMITED,
    OUTCOME_RENTED,
    OUTCOME_TIMEOUT,
    OUTCOME_WOULD_RENT,
    build_create_body,
    choose_next_offer,
    classify_progress,
    find_account_key,
    image_failed,
    image_reference_problem,
    label_problem,
    outcome_for,
    over_price,
    parse_public_key,
    probe_ssh,
    summarize_instance,
)
from ..module_utils._offers import select_offers

DEFAULT_DISK_GB = 10.0
BID_MAX = 128.0
SEARCH_FILTERS = ("gpu_name", "num_gpus", "min_cpu_cores", "min_host_cpu_cores", "min_ram_gb", "min_disk_gb", "min_cuda",
                  "min_reliability", "min_inet_up_mbps", "min_duration_days", "query", "order", "limit")
# Outcomes after which the instance was destroyed by the module.
DESTROY_PROGRESS = ("over_price", "failed", "stuck", "timeout")


class VastInstance(VastModule):
    query = None
    disk = None

    def __init__(self, module, probe=probe_ssh, **kwargs):
        super(VastInstance, self).__init__(module, **kwargs)
        self.probe = probe
        self.attempts = []

    # -- validation (no request) ---------------------------------------------------------------

    def validate(self):
        super(VastInstance, self).validate()
        p = self.module.params
        label = p["label"]
        if label is None or not label.strip():
            self.fail_option("label", "must not be empty")
        # An instance of any label can be destroyed; only a safe one is rented, started or stopped.
        if p["state"] != "absent" and label_problem(label):
            self.fail_option("label", label_problem(label))
        problem = None if p["image"] is None else image_reference_problem(p["image"])
        if problem:
            self.fail_option("image", "%r %s; give a docker image reference such as %s" % (
                p["image"], problem, IMAGE_EXAMPLE))
        if p["disk_gb"] is not None and not p["disk_gb"] >= DISK_MIN_GB:
            self.fail_option("disk_gb", "must be at least %g GB, got %s" % (DISK_MIN_GB, p["disk_gb"]))
        if p["onstart"] is not None and len(p["onstart"]) > ONSTART_MAX:
            self.fail_option("onstart", "must be at most %d characters, got %d" % (ONSTART_MAX, len(p["onstart"])))
        for key in (p["env"] or {}):
            if not str(key).strip():
                self.fail_option("env", "variable names must not be empty")
        if p["ssh_public_key"] is not None:
            try:
                parse_public_key(p["ssh_public_key"])
            except ValueError as exc:
                self.fail_option("ssh_public_key", str(exc))
        if p["bid_price"] is not None:
            if not 0 < p["bid_price"] <= BID_MAX:
                self.fail_option("bid_price", "must be greater than 0 and at most %g $/h, got %s" % (BID_MAX, p["bid_price"]))
            if p["rental_type"] != "interruptible":
                self.fail_option("bid_price", "is only valid with rental_type=interruptible")
        for name in ("wait_timeout", "loading_timeout", "max_attempts"):
            if p[name] < 1:
                self.fail_option(name, "must be at least 1, got %s" % p[name])
        if not p["poll_interval"] > 0:
            self.fail_option("poll_interval", "must be greater than 0, got %s" % p["poll_interval"])
        if p["offer_id"] is not None:
            if p["offer_id"] < 1:
                self.fail_option("offer_id", "must be a positive offer id, got %s" % p["offer_id"])
        # Disk: what we allocate must fit on the offer, and prices are compared with it included.
        self.disk = p["disk_gb"] if p["disk_gb"] is not None else (
            p["min_disk_gb"] if p["min_disk_gb"] is not None else DEFAULT_DISK_GB)
        min_disk = p["min_disk_gb"]
        if p["offer_id"] is None and (min_disk is None or min_disk < self.disk):
            min_disk = self.disk
        if p["blocklist_reason"] is not None and (p["state"] != "absent" or not p["blocklist_reason"].strip()):
            self.fail_option("blocklist_reason", "must be a non-empty reason, and only with state=absent")
        if p["ledger_file"] is not None and p["state"] != "absent":
            self.fail_option("ledger_file", "is only for state=absent")
        self.query = self.build_offer_query(allocated_storage=self.disk, min_disk_gb=min_disk,
                                            use_blocklist=p["state"] != "absent")

    # -- entry ---------------------------------------------------------------------------------

    def run(self):
        p = self.module.params
        label = p["label"]
        existing = self.client.find_instances_by_label(label)
        if p["state"] == "absent":
            self.absent(existing)
            return
        if len(existing) > 1:
            ids = ", ".join(str(i.get("id")) for i in existing)
            self.fail("Several Vast.ai instances carry the label %r (ids %s); the label must identify one instance. "
                      "Destroy the extra ones (state=absent destroys all of them) or relabel them." % (label, ids),
                      instance=None)
        if existing:
            self.manage_existing(existing[0])
            return
        self.rent()

    # -- absent --------------------------------------------------------------------------------

    def absent(self, existing):
        destroyed = []
        reason = self.module.params["blocklist_reason"]
        blocklisted = []
        for inst in existing:
            iid = int(inst["id"])
            if self.module.check_mode or self.client.destroy_instance(iid):
                destroyed.append(iid)
            machine = summarize_instance(inst)["machine_id"]
            if reason and machine is not None:
                try:
                    if self.module.check_mode or add_to_blocklist(self.blocklist_file(), machine, reason, iid):
                        blocklisted.append(machine)
                except (OSError, ValueError) as exc:
                    self.fail("Instance %d was destroyed, but its machine %d could not be put on the blocklist: %s"
                              % (iid, machine, exc), destroyed=destroyed, instance=None)
        ledger = self.module.params["ledger_file"]
        if ledger and destroyed and not self.module.check_mode:
            now = self.clock()
            rows = [{"id": i["id"], "label": i["label"], "dph": i["dph_total"], "start_time": i["start_date"],
                     "end_time": now} for i in map(summarize_instance, existing) if i["id"] in destroyed]
            try:
                record_instances(ledger, rows)
            except (OSError, ValueError) as exc:
                self.fail("Instances %s were destroyed, but could not be counted in the campaign's ledger: %s"
                          % (destroyed, exc), destroyed=destroyed, instance=None)
        self.result.update(changed=bool(destroyed or blocklisted), destroyed=destroyed, instance=None)
        if reason:
            self.result["blocklisted"] = blocklisted

    # -- existing instance ---------------------------------------------------------------------

    def manage_existing(self, inst):
        p = self.module.params
        iid = int(inst["id"])
        status = instance_status(inst)
        intended = inst.get("intended_status")
        if p["state"] == "stopped":
            if intended != "stopped" or status == "running":
                self.result["changed"] = True
                if not self.module.check_mode:
                    self.client.set_instance_state(iid, "stopped")
                    inst = self.client.get_instance(iid) or inst
        elif p["state"] == "running":
            if intended != "running" or status in ("exited", "stopped"):
                self.result["changed"] = True
                if not self.module.check_mode:
                    self.client.set_instance_state(iid, "running")
                    inst = self.client.get_instance(iid) or inst
            if p["wait"] and not self.module.check_mode:
                inst = self.wait_existing(iid)
        self.result["instance"] = summarize_instance(inst)

    def wait_existing(self, iid):
        deadline = self.clock() + self.module.params["wait_timeout"]
        while True:
            inst = self.client.get_instance(iid)
            if inst is None:
                self.fail("Vast.ai instance %d vanished while waiting for it to run." % iid, instance=None)
            if instance_status(inst) == "running" and self.ssh_ready(inst):
                return inst
            now = self.clock()
            if now >= deadline:
                host, port, _kind = ssh_endpoint(inst)
                self.fail("Vast.ai instance %d was not running with SSH answering after %ss (status %s, ssh %s:%s). "
                          "Check it in the console or raise wait_timeout." % (
                              iid, self.module.params["wait_timeout"], instance_status(inst), host, port),
                          instance=summarize_instance(inst))
            self.sleep(min(self.module.params["poll_interval"], max(0.0, deadline - now)))

    def ssh_ready(self, inst):
        host, port, _kind = ssh_endpoint(inst)
        return bool(host and port and self.probe(host, port))

    # -- renting -------------------------------------------------------------------------------

    def ensure_account_key(self):
        key = self.module.params["ssh_public_key"]
        if key is None:
            return
        keys = self.client.list_ssh_keys()
        if find_account_key(keys, key) is not None:
            self.result["ssh_key_added"] = False
            return
        if not self.module.check_mode:
            self.client.add_ssh_key(key.strip())
        self.result["ssh_key_added"] = True
        self.result["changed"] = True

    def candidates(self):
        p = self.module.params
        if p["offer_id"] is not None:
            return [{"id": p["offer_id"]}]
        offers = self.client.search_offers(self.query)
        ranked, rejected = select_offers(offers, self.query)
        self.result["query"] = self.query
        if not ranked:
            self.fail("No Vast.ai offer matches the filters: the search returned %d offer(s), %d failed the "
                      "re-check%s. Relax the filters (for example max_dph or min_reliability) and try again." % (
                          len(offers), len(rejected),
                          (" (first: offer %s: %s)" % (rejected[0]["id"], "; ".join(rejected[0]["problems"])))
                          if rejected else ""),
                      query=self.query, rejected=rejected[:20], instance=None)
        return ranked

    def rent(self):
        try:
            self.rent_until_ready()
        except KeyboardInterrupt:
            self.fail_interrupted()

    def fail_interrupted(self):
        """Ctrl-C (SIGINT, passed on by the instance action plugin) while renting: name what bills and how to stop it."""
        label = self.module.params["label"]
        pending = [a for a in self.attempts if a["instance_id"] and a["outcome"] == "pending"]
        if pending:
            rented = "instance %s (label %r) exists and bills from now on, still loading" % (
                ", ".join(str(a["instance_id"]) for a in pending), label)
        else:
            rented = "an instance labelled %r may exist (the create may have been sent) and would bill" % label
        self.fail("Interrupted while renting: %s. Run the rent again to go on with it (it is found by its label), "
                  "or destroy it: ansible localhost -m voltx.vastai.instance -a 'label=%s state=absent' (or the "
                  "teardown, ansible-playbook voltx.vastai.teardown -e harvest_teardown_force=true, once it runs)."
                  % (rented, label), interrupted=True, attempts=self.attempts, instance=None)

    def rent_until_ready(self):
        p = self.module.params
        if not p["image"]:
            self.fail("image: is required to rent a new instance (no instance carries the label %r)." % p["label"],
                      instance=None)
        self.ensure_account_key()
        ranked = self.candidates()
        if self.module.check_mode:
            offer = ranked[0]
            self.attempts.append(self._attempt(offer, OUTCOME_WOULD_RENT))
            self.result.update(changed=True, offer=offer, attempts=self.attempts, instance=None)
            return
        self.result["attempts"] = self.attempts
        wait = p["wait"] and p["state"] != "stopped"
        deadline = self.clock() + p["wait_timeout"]
        tried = set()
        rate_limited = 0
        inst = None
        offer = None
        while len(self.attempts) < p["max_attempts"]:
            offer = choose_next_offer(ranked, tried)
            if offer is None:
                break
            if self.clock() >= deadline:
                break
            offer_id = int(offer["id"])
            iid = self.create(offer, tried)
            if iid is None:
                if self.attempts and self.attempts[-1]["outcome"] == OUTCOME_RATE_LIMITED:
                    self.sleep(self.client.retry_policy.backoff(rate_limited))
                    rate_limited += 1
                continue
            tried.add(offer_id)
            self.result["changed"] = True
            attempt = self._attempt(offer, "pending", instance_id=iid)
            self.attempts.append(attempt)
            try:
                self.attach_key(iid)
                progress, inst = self.follow(iid, deadline, wait)
            except VastError as exc:
                self.give_up_rented(iid, exc)
            if inst is not None:
                attempt["contract_dph"] = summarize_instance(inst)["dph_total"]
                attempt["status"] = instance_status(inst)
            if progress == "ready":
                attempt["outcome"] = OUTCOME_RENTED
                break
            attempt["outcome"] = outcome_for(progress)
            if progress in DESTROY_PROGRESS:
                self.destroy_given_up(iid)
            if progress == "failed" and inst is not None and image_failed(inst):
                # The image cannot be pulled: every other machine would fail the same way, so rent no more.
                attempt.update(outcome=OUTCOME_IMAGE_FAILED, status_msg=inst.get("status_msg"))
                self.fail("Vast.ai could not pull the image %r (option image): %s. Instance %d was destroyed, so it "
                          "bills nothing more, and nothing else was rented. Check the image's name and tag (and that "
                          "it is public), then run again." % (p["image"], inst.get("status_msg"), iid),
                          instance_id=iid, attempts=self.attempts, instance=None)
            inst = None
            if progress == "timeout":
                break
        if inst is None:
            self.fail(self._failure_message(deadline), instance=None)
        if p["state"] == "stopped":
            self.client.set_instance_state(int(inst["id"]), "stopped")
            inst = self.client.get_instance(int(inst["id"])) or inst
        self.result.update(offer=offer, instance=summarize_instance(inst))

    def create(self, offer, tried):
        """One create attempt. Returns the new instance id, or None (the attempt is recorded)."""
        p = self.module.params
        offer_id = int(offer["id"])
        body = build_create_body(
            image=p["image"], disk_gb=self.disk, label=p["label"], runtype=p["runtype"], onstart=p["onstart"],
            env=p["env"], bid_price=p["bid_price"], cancel_unavail=p["cancel_unavail"])
        try:
            return self.client.create_instance(offer_id, body)
        except VastOfferUnavailableError as exc:
            tried.add(offer_id)
            self.attempts.append(self._attempt(offer, OUTCOME_OFFER_GONE, message=str(exc)))
            return None
        except VastRateLimitError as exc:
            # A 429 means the API did not take the request; the same offer may be tried again.
            self.attempts.append(self._attempt(offer, OUTCOME_RATE_LIMITED, message=str(exc)))
            return None
        except (VastTransportError, VastError) as exc:
            if exc.unavailable:
                self.fail_unavailable(exc)
            if not exc.maybe_created:
                raise
            # The request may have reached Vast.ai: look the label up before anything else.
            found = self.lookup_after_uncertain_create()
            if found is not None:
                return int(found["id"])
            tried.add(offer_id)
            self.attempts.append(self._attempt(offer, OUTCOME_CREATE_UNCERTAIN, message=str(exc)))
            return None

    def fail_unavailable(self, exc):
        """The service answered 502/503 to every create (the client retried, looking the label up before each try):
        an outage, which no other offer or filter gets round."""
        label = self.module.params["label"]
        if exc.maybe_created:
            rented = ("Whether the last create took could not be checked (the look-up failed too): an instance "
                      "labelled %r may exist and bill. A new run finds it by its label before it rents, so it "
                      "never rents twice; or look for it in the console." % label)
        else:
            rented = "Nothing was rented: no instance carries the label %r (looked up after every try)." % label
        self.fail("Vast.ai was unavailable: %s. %s This is an outage on Vast.ai's side, not a problem of the "
                  "filters: run again later." % (exc, rented), status=exc.status, attempts=self.attempts,
                  instance=None)

    def lookup_after_uncertain_create(self):
        """After a create whose answer was lost, look for the label for as long as a create may take, so that a
        create the service is still working on is found instead of paid for twice."""
        label = self.module.params["label"]
        until = self.clock() + CREATE_TIMEOUT
        while True:
            try:
                found = self.client.find_instances_by_label(label)
            except (VastRateLimitError, VastTransportError):
                found = None
            if found:
                return found[0]
            if self.clock() >= until:
                return None
            self.sleep(self.module.params["poll_interval"])

    def destroy_given_up(self, iid):
        """Destroys an instance the module gave up on; a failure names it, since it may still be billing."""
        try:
            self.client.destroy_instance(iid)
        except VastError as exc:
            self.fail("Vast.ai instance %d was rented and given up on, but destroying it failed: %s. It may still be "
                      "billing: destroy it with this module (label %r, state absent) or in the console." % (
                          iid, exc, self.module.params["label"]),
                      instance_id=iid, attempts=self.attempts, instance=None)

    def give_up_rented(self, iid, exc):
        """A rented instance could not be followed: destroy it rather than leave it billing unseen, and say so."""
        try:
            self.client.destroy_instance(iid)
            fate = "it was destroyed, so it bills nothing more"
        except VastError as destroy_exc:
            fate = ("destroying it failed too (%s): it may still be billing. Destroy it now with this module "
                    "(label %r, state absent) or in the console" % (destroy_exc, self.module.params["label"]))
        self.fail("Vast.ai instance %d was rented, but following it failed: %s; %s." % (iid, exc, fate),
                  instance_id=iid, attempts=self.attempts, instance=None)

    def attach_key(self, iid):
        key = self.module.params["ssh_public_key"]
        if key is None:
            return
        try:
            self.client.attach_ssh_key(iid, key.strip())
        except VastError as exc:
            self.module.warn("Could not attach ssh_public_key to instance %d: %s" % (iid, exc))

    def follow(self, iid, deadline, wait):
        """Poll a fresh instance until it is ready, or a reason to give it up. Returns (progress, inst)."""
        p = self.module.params
        started = self.clock()
        while True:
            try:
                inst = self.client.get_instance(iid)
            except (VastRateLimitError, VastTransportError):
                # Transient: the instance is there and billing, so keep following it until a deadline says stop.
                if self.clock() >= deadline:
                    raise
                self.sleep(p["poll_interval"])
                continue
            if not wait:
                if inst is None:
                    return "vanished", None
                if over_price(inst, p["max_dph"]):
                    return "over_price", inst
                return "ready", inst
            ssh_ok = inst is not None and instance_status(inst) == "running" and self.ssh_ready(inst)
            now = self.clock()
            progress = classify_progress(inst, now, started, p["loading_timeout"], deadline, ssh_ok=ssh_ok,
                                         max_dph=p["max_dph"])
            if progress != "pending":
                return progress, inst
            limit = min(deadline, started + p["loading_timeout"])
            self.sleep(max(0.0, min(p["poll_interval"], limit - now)))

    # -- reporting -----------------------------------------------------------------------------

    @staticmethod
    def _attempt(offer, outcome, instance_id=None, message=None):
        price = offer.get("dph_total")
        try:
            price = float(price) if price is not None else None
        except (TypeError, ValueError):
            price = None
        attempt = {"offer_id": int(offer["id"]), "outcome": outcome, "dph_total": price, "instance_id": instance_id}
        if message:
            attempt["message"] = message
        return attempt

    def _failure_message(self, deadline):
        p = self.module.params
        parts = []
        for att in self.attempts:
            where = " (instance %s)" % att["instance_id"] if att.get("instance_id") else ""
            parts.append("offer %s: %s%s" % (att["offer_id"], att["outcome"], where))
        if self.attempts and all(att["outcome"] == OUTCOME_RATE_LIMITED for att in self.attempts):
            return ("Vast.ai rate-limited every create request (HTTP 429, %d attempt(s)), so nothing was rented for "
                    "the label %r. The filters are fine: wait a minute and run again." % (
                        len(self.attempts), p["label"]))
        why = "after %d attempt(s)" % len(self.attempts)
        if (self.attempts and self.attempts[-1]["outcome"] == OUTCOME_TIMEOUT) or self.clock() >= deadline:
            why += ", wait_timeout %ss passed" % p["wait_timeout"]
        elif len(self.attempts) < p["max_attempts"]:
            why += ", no more matching offers"
        return ("Could not rent a usable Vast.ai instance labelled %r %s: %s. Every instance the module rented and "
                "gave up on was destroyed. Relax the filters, raise max_attempts or loading_timeout, or try again "
                "later." % (p["label"], why, "; ".join(parts) or "no attempt"))


def argument_spec():
    spec = vast_argument_spec()
    spec.update(offer_filter_argument_spec())
    spec.update(
        state=dict(type="str", default="present", choices=["present", "running", "stopped", "absent"]),
        label=dict(type="str", required=True),
        offer_id=dict(type="int"),
        image=dict(type="str"),
        disk_gb=dict(type="float"),
        onstart=dict(type="str"),
        env=dict(type="dict"),
        ssh_public_key=dict(type="str"),
        runtype=dict(type="str", default="ssh_direct", choices=["ssh_direct", "ssh_proxy", "ssh"]),
        bid_price=dict(type="float"),
        cancel_unavail=dict(type="bool", default=True),
        wait=dict(type="bool", default=True),
        wait_timeout=dict(type="int", default=1800),
        loading_timeout=dict(type="int", default=600),
        max_attempts=dict(type="int", default=3),
        blocklist_reason=dict(type="str"),
        ledger_file=dict(type="path"),
        poll_interval=dict(type="float", default=5.0),
    )
    return spec


def main():
    module = AnsibleModule(
        argument_spec=argument_spec(),
        # An offer named by id is rented as it is: a search filter beside it would be silently ignored.
        mutually_exclusive=[("offer_id", name) for name in SEARCH_FILTERS],
        required_if=[("rental_type", "interruptible", ["bid_price"])],
        supports_check_mode=True,
    )
    VastInstance(module).execute()


if __name__ == "__main__":
    main()
