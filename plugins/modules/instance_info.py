#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, voltx engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: instance_info
short_description: List Vast.ai instances of the account
version_added: 1.0.0
description:
  - Returns the account's Vast.ai instances, all of them or those with a given O(id) or O(label),
    optionally only those whose status is in O(statuses).
  - This module never changes anything.
author:
  - voltx engineers (@voltx)
options:
  id:
    description:
      - Only the instance with this id.
      - Mutually exclusive with O(label).
    type: int
  label:
    description:
      - Only the instances carrying this label.
      - Mutually exclusive with O(id).
    type: str
  statuses:
    description:
      - Only instances whose C(actual_status) is one of these, for example V([running, loading]).
      - V(provisioning) matches instances whose C(actual_status) is still null.
    type: list
    elements: str
extends_documentation_fragment:
  - voltx.vastai.vastai
  - ansible.builtin.action_common_attributes
"""

EXAMPLES = r"""
- name: Get the training instance
  voltx.vastai.instance_info:
    label: voltx-train
  register: info

- name: Fail when it is not running
  ansible.builtin.assert:
    that:
      - info.instances | length == 1
      - info.instances[0].status == 'running'

- name: List every running instance of the account
  voltx.vastai.instance_info:
    statuses: [running]
  register: running
"""

RETURN = r"""
instances:
  description: The matching instances, sorted by id.
  returned: always
  type: list
  elements: dict
  contains:
    id:
      description: Instance id.
      type: int
      sample: 28765432
    label:
      description: Label, or null.
      type: str
      sample: voltx-train
    status:
      description: The instance's C(actual_status); C(provisioning) while Vast.ai still reports it as null.
      type: str
      sample: running
    intended_status:
      description: C(running) or C(stopped).
      type: str
    status_msg:
      description: Vast.ai's free-text status message.
      type: str
    ssh_host:
      description: Host to SSH to (public IP for direct SSH, else the proxy host).
      type: str
    ssh_port:
      description: Port to SSH to.
      type: int
    ssh_kind:
      description: C(direct) or C(proxy).
      type: str
    ssh_user:
      description: Always C(root).
      type: str
    public_ipaddr:
      description: The host's public IP address.
      type: str
    dph_total:
      description: Price in dollars per hour.
      type: float
    gpu_name:
      description: GPU model.
      type: str
    num_gpus:
      description: Number of GPUs.
      type: int
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
"""

from ansible.module_utils.basic import AnsibleModule

from ..module_utils._base import VastModule, vast_argument_spec
from ..module_utils._endpoint import instance_status
from ..module_utils._instance import summarize_instance


class VastInstanceInfo(VastModule):

    def validate(self):
        super(VastInstanceInfo, self).validate()
        p = self.module.params
        if p["label"] is not None and not p["label"].strip():
            self.fail_option("label", "must not be empty")
        if p["id"] is not None and p["id"] < 1:
            self.fail_option("id", "must be a positive instance id, got %s" % p["id"])

    def run(self):
        p = self.module.params
        if p["id"] is not None:
            inst = self.client.get_instance(p["id"])
            rows = [inst] if inst is not None else []
        elif p["label"] is not None:
            rows = self.client.find_instances_by_label(p["label"])
        else:
            rows = self.client.list_instances()
        if p["statuses"]:
            wanted = set(s.strip().lower() for s in p["statuses"])
            rows = [r for r in rows if instance_status(r) in wanted]
        summaries = [summarize_instance(r) for r in rows]
        summaries.sort(key=lambda s: (s["id"] is None, s["id"] or 0))
        self.result["instances"] = summaries


def argument_spec():
    spec = vast_argument_spec()
    spec.update(
        id=dict(type="int"),
        label=dict(type="str"),
        statuses=dict(type="list", elements="str"),
    )
    return spec


def main():
    module = AnsibleModule(argument_spec=argument_spec(), mutually_exclusive=[("id", "label")], supports_check_mode=True)
    VastInstanceInfo(module).execute()


if __name__ == "__main__":
    main()
