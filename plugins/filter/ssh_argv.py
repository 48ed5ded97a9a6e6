# -*- coding: utf-8 -*-
# Copyright: (c) 2026, voltx engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
name: ssh_argv
short_description: The ssh command line that reaches a host the way Ansible's own connection does
version_added: 1.0.0
author:
  - voltx engineers
description:
  - Builds C(ssh)'s argv, up to and including C(user@host), from a host's connection variables, so that every ssh the
    controller starts by hand (the burn-in's throughput probe, data_sync's uploads, the printed attach hint) goes where
    Ansible goes, with the key Ansible uses and the host key it pins.
  - Reads C(ansible_host) (else C(inventory_hostname)), C(ansible_port), C(ansible_user), the private key
    (C(ansible_ssh_private_key_file), else C(ansible_private_key_file), as Ansible's ssh connection ranks them; else
    Ansible's C(private_key_file) setting), C(ansible_ssh_common_args) and C(ansible_ssh_extra_args).
  - The host-key policy is the one those arguments carry; the voltx.vastai.vastai inventory pins each instance's key
    in a file of its own there (C(UserKnownHostsFile), C(StrictHostKeyChecking=accept-new)).
  - The connection is always one of its own (C(ControlMaster=no), C(ControlPath=none)), so that ssh checks the key the
    host serves now against the pinned one; a master connection opened earlier would skip that check.
positional: options
options:
  _input:
    description:
      - The variables in scope, C(vars), which hold the connection variables as the task sees them (inventory, play,
        role and extra vars; C(hostvars[inventory_hostname]) would miss the play's).
    type: dict
    required: true
  options:
    description:
      - More C(ssh -o) options (C(Name=value)), put first so that they win over the connection's (ssh keeps the first
        value of an option).
    type: list
    elements: str
    default: []
"""

EXAMPLES = r"""
- name: Run a command on the host from the controller, over ssh
  ansible.builtin.command:
    argv: "{{ vars | voltx.vastai.ssh_argv(['BatchMode=yes']) + ['uptime'] }}"
  delegate_to: localhost
"""

RETURN = r"""
_value:
  description: ssh's argv, ending with the destination; append the remote command.
  type: list
  elements: str
"""

import shlex

from ansible.errors import AnsibleFilterError
from ansible.module_utils.common.text.converters import to_text


def _default_private_key_file():
    """Ansible's private_key_file setting (ANSIBLE_PRIVATE_KEY_FILE, ansible.cfg): its connection's fallback."""
    from ansible import constants as C
    return C.config.get_config_value('DEFAULT_PRIVATE_KEY_FILE')


def ssh_argv(variables, options=()):
    """ssh's argv (up to the destination) for the host whose variables in scope are ``variables``."""
    if not hasattr(variables, 'get'):
        raise AnsibleFilterError('ssh_argv expects the variables in scope (vars), got %s' % type(variables).__name__)
    if isinstance(options, (str, bytes)):
        raise AnsibleFilterError('ssh_argv expects a list of ssh options, got a string: %r' % (options,))

    def var(name):
        value = variables.get(name)
        return '' if value is None else to_text(value).strip()

    host = var('ansible_host') or var('inventory_hostname')
    if not host:
        raise AnsibleFilterError('ssh_argv: the host has neither ansible_host nor inventory_hostname')
    argv = ['ssh']
    for option in options:
        argv += ['-o', to_text(option)]
    argv += ['-o', 'ControlMaster=no', '-o', 'ControlPath=none']
    if var('ansible_port'):
        argv += ['-p', var('ansible_port')]
    # Ansible's ssh connection takes the last of its variables that is set: ansible_ssh_private_key_file.
    key = var('ansible_ssh_private_key_file') or var('ansible_private_key_file') or _default_private_key_file()
    if key:
        argv += ['-i', to_text(key), '-o', 'IdentitiesOnly=yes']
    argv += shlex.split(var('ansible_ssh_common_args')) + shlex.split(var('ansible_ssh_extra_args'))
    return argv + [var('ansible_user') + '@' + host if var('ansible_user') else host]


class FilterModule(object):
    def filters(self):
        return {'ssh_argv': ssh_argv}
