#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, voltx engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: reap
short_description: Destroy this collection's forgotten Vast.ai instances, and never anyone else's
version_added: 1.0.0
description:
  - Lists the account's instances and destroys those whose label starts with O(label_prefix) and that are
    stuck before running past O(loading_timeout), in one of O(statuses) (by default only offline, since a stopped
    instance keeps its disk), or older than O(ttl_hours), or whose cost reached O(max_cost_usd).
  - An instance without a label, or whose label does not start with O(label_prefix), is never touched.
  - Harvest first what an instance still holds (C(playbooks/reap.yml) does); this module only destroys.
author:
  - voltx engineers (@voltx)
options:
  label_prefix:
    description:
      - Only instances whose label starts with this are considered. Must not be empty.
    type: str
    required: true
  loading_timeout:
    description:
      - Seconds an instance may stay provisioning, scheduling, created or loading before it is reaped.
    type: int
    default: 1800
  statuses:
    description:
      - Statuses (C(actual_status)) reaped whatever the instance's age.
    type: list
    elements: str
    default: [offline]
  ttl_hours:
    description:
      - Instances older than this many hours are reaped whatever their status. V(0) means no limit.
    type: float
    default: 0
  max_cost_usd:
    description:
      - Instances whose own cost so far (the API's price per hour, storage included, times their age) reached this
        many dollars are reaped. V(0) means no ceiling.
    type: float
    default: 0
  only_ids:
    description:
      - When set, only these instances may be destroyed on this run (those a plan listed and whose harvest did
        not fail); each is still checked against the rules above.
    type: list
    elements: int
  inventory_account:
    description:
      - The account of the inventory whose hosts the play harvests, its C(vastai_inventory_account) (the
        C(voltx.vastai.vastai) inventory sets it). When given, the module fails before any request unless its own
        API URL (O(api_url)) and key are the same, so that it never destroys the instances of an account
        whose instances the play's harvest cannot see.
    type: dict
extends_documentation_fragment:
  - voltx.vastai.vastai
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: In check mode the module lists what it would destroy, and why, with the price per hour of each.
"""

EXAMPLES = r"""
- name: List what would be reaped and what it costs per hour
  voltx.vastai.reap:
    label_prefix: volt-x-
    ttl_hours: 72
  check_mode: true
  register: plan

- name: Reap
  voltx.vastai.reap:
    label_prefix: volt-x-
    ttl_hours: 72
"""

RETURN = r"""
reaped:
  description: The instances destroyed (or that would be in check mode).
  returned: always
  type: list
  elements: dict
  contains:
    id:
      description: Instance id.
      type: int
    label:
      description: Its label.
      type: str
    status:
      description: Its status when it was looked at.
      type: str
    reason:
      description: C(stuck_loading), C(status), C(ttl) or C(budget).
      type: str
    detail:
      description: The numbers behind the reason.
      type: str
    dph_total:
      description: What it cost per hour, in dollars.
      type: float
    machine_id:
      description: Its physical machine.
      type: int
kept:
  description: Ids of the instances with the label prefix that were left alone.
  returned: always
  type: list
  elements: int
foreign:
  description: How many instances were ignored because their label does not start with O(label_prefix).
  returned: always
  type: int
dph_total:
  description: Dollars per hour that the reaped instances cost together.
  returned: always
  type: float
summary:
  description: One line saying what was done, for cron.
  returned: always
  type: str
  sample: "reap: destroyed 1 instance(s) (volt-x-old #28765432: status offline, $0.190/h), $0.190/h in all; ..."
"""

from ansible.module_utils.basic import AnsibleModule

from ..module_utils._base import VastModule, vast_argument_spec
from ..module_utils._client import VastError
from ..module_utils._fleet import reap_plan, summary_line
from ..module_utils._instance import summarize_instance


class VastReap(VastModule):

    def validate(self):
        super(VastReap, self).validate()
        p = self.module.params
        if not (p["label_prefix"] or "").strip():
            self.fail_option("label_prefix", "must not be empty: it is what keeps the reaper off instances that "
                                             "are not this collection's")
        if p["loading_timeout"] < 1:
            self.fail_option("loading_timeout", "must be at least 1, got %s" % p["loading_timeout"])
        for name in ("ttl_hours", "max_cost_usd"):
            if p[name] < 0:
                self.fail_option(name, "must be 0 (no limit) or more, got %s" % p[name])

    def check_account(self):
        expected = self.module.params["inventory_account"]
        mine = None if expected is None else self.client.account()
        if expected == mine:
            return
        if expected.get("api_url") != mine["api_url"]:
            why = ("the inventory lists the instances at %s, this play's API is %s (vastai_api_url, else VAST_API_URL): "
                   "set vastai_api_url to the inventory's api_url" % (expected.get("api_url"), mine["api_url"]))
        else:
            why = ("the inventory lists the instances of another API key than this play's (VAST_API_KEY, else the "
                   "vastai CLI's key file): run the inventory and the play with the same key")
        self.fail_option("inventory_account", "%s. Nothing was listed or destroyed." % why)

    def run(self):
        p = self.module.params
        self.check_account()
        statuses = set(s.strip().lower() for s in p["statuses"])
        plan, kept, foreign = reap_plan(self.client.list_instances(), self.clock(), p["label_prefix"],
                                        p["loading_timeout"], statuses, p["ttl_hours"], p["only_ids"],
                                        p["max_cost_usd"])
        reaped, failed = [], []
        for inst, (reason, detail) in plan:
            summary = summarize_instance(inst)
            entry = dict(id=summary["id"], label=summary["label"], status=summary["status"], reason=reason,
                         detail=detail, dph_total=summary["dph_total"], machine_id=summary["machine_id"])
            if not self.module.check_mode:
                try:
                    self.client.destroy_instance(summary["id"])
                except VastError as exc:
                    failed.append(summary["id"])
                    entry["error"] = str(exc)
                    continue
            reaped.append(entry)
        self.result.update(
            changed=bool(reaped), reaped=reaped, kept=sorted(summarize_instance(i)["id"] for i in kept),
            foreign=foreign, dph_total=round(sum(e["dph_total"] or 0.0 for e in reaped), 6),
            summary=summary_line(reaped, len(kept), foreign, p["label_prefix"], self.module.check_mode, failed))
        if failed:
            ids = ", ".join(str(i) for i in failed)
            self.fail("Could not destroy Vast.ai instance(s) %s; they may still be billing. Run the reaper again "
                      "or destroy them in the console. %s" % (ids, self.result["summary"]))


def argument_spec():
    spec = vast_argument_spec()
    spec.update(
        label_prefix=dict(type="str", required=True),
        loading_timeout=dict(type="int", default=1800),
        statuses=dict(type="list", elements="str", default=["offline"]),
        ttl_hours=dict(type="float", default=0),
        max_cost_usd=dict(type="float", default=0),
        only_ids=dict(type="list", elements="int"),
        inventory_account=dict(type="dict"),
    )
    return spec


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    VastReap(module).execute()


if __name__ == "__main__":
    main()
