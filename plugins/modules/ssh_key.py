#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, voltx engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: ssh_key
short_description: Manage the SSH public keys of a Vast.ai account
version_added: 1.0.0
description:
  - Adds or removes an SSH public key of the Vast.ai account. Vast.ai puts the account keys on new instances.
  - Keys are matched by type and base64 body; the comment is ignored.
author:
  - voltx engineers (@voltx)
options:
  key:
    description:
      - The public key line, for example the content of C(~/.ssh/id_ed25519.pub).
      - Must start with C(ssh-), C(ecdsa-) or C(sk-).
    type: str
    required: true
  state:
    description:
      - V(present) adds the key when the account does not have it; V(absent) removes every copy of it.
    type: str
    default: present
    choices: [present, absent]
extends_documentation_fragment:
  - voltx.vastai.vastai
  - ansible.builtin.action_common_attributes
"""

EXAMPLES = r"""
- name: Make sure the account has my key
  voltx.vastai.ssh_key:
    key: "{{ lookup('ansible.builtin.file', '~/.ssh/id_ed25519.pub') }}"

- name: Remove an old key
  voltx.vastai.ssh_key:
    key: ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOld old@laptop
    state: absent
"""

RETURN = r"""
ssh_key:
  description: The account key (the one removed for V(absent)), or an empty dict when there was none to remove.
  returned: always
  type: dict
  contains:
    id:
      description: Key id on the account (null in check mode for a key that would be added).
      type: int
      sample: 123
    key:
      description: The public key text.
      type: str
      sample: ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI... me@laptop
    created_at:
      description: When the key was added.
      type: str
      sample: "2026-01-01T12:00:00Z"
"""

from ansible.module_utils.basic import AnsibleModule

from ..module_utils._base import VastModule, vast_argument_spec
from ..module_utils._instance import key_identity, parse_public_key


def _summary(key):
    if not key:
        return {}
    return {"id": key.get("id"), "key": key.get("key") or key.get("public_key"), "created_at": key.get("created_at")}


class VastSSHKey(VastModule):

    def validate(self):
        super(VastSSHKey, self).validate()
        try:
            parse_public_key(self.module.params["key"])
        except ValueError as exc:
            self.fail_option("key", str(exc))

    def run(self):
        p = self.module.params
        wanted = key_identity(p["key"])
        matches = [k for k in self.client.list_ssh_keys()
                   if key_identity(k.get("key") or k.get("public_key") or "") == wanted]
        if p["state"] == "present":
            if matches:
                self.result["ssh_key"] = _summary(matches[0])
                return
            self.result["changed"] = True
            if self.module.check_mode:
                self.result["ssh_key"] = {"id": None, "key": p["key"].strip(), "created_at": None}
                return
            self.result["ssh_key"] = _summary(self.client.add_ssh_key(p["key"].strip()))
            return
        self.result["ssh_key"] = _summary(matches[0]) if matches else {}
        for key in matches:
            self.result["changed"] = True
            if not self.module.check_mode:
                self.client.delete_ssh_key(key["id"])


def argument_spec():
    spec = vast_argument_spec()
    spec.update(
        key=dict(type="str", required=True, no_log=False),
        state=dict(type="str", default="present", choices=["present", "absent"]),
    )
    return spec


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    VastSSHKey(module).execute()


if __name__ == "__main__":
    main()
