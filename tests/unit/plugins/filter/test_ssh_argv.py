# -*- coding: utf-8 -*-
# Copyright: (c) 2026, voltx engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import pytest

from ansible.errors import AnsibleFilterError
from ansible_collections.voltx.vastai.plugins.filter import ssh_argv as plugin
from ansible_collections.voltx.vastai.plugins.filter.ssh_argv import FilterModule, ssh_argv

# What the voltx.vastai.vastai inventory gives an instance, with a key in a place of the user's choosing.
INSTANCE = {
    'inventory_hostname': 'volt-x-training', 'ansible_host': 'ssh4.vast.ai', 'ansible_port': 34567,
    'ansible_user': 'root', 'ansible_private_key_file': '/keys/my vast key',
    'ansible_ssh_common_args': "-o UserKnownHostsFile='/pins/28765432' -o StrictHostKeyChecking=accept-new",
}


def option(argv, name):
    """The value ssh takes for -o NAME: the first one given."""
    values = [argv[i + 1].split('=', 1)[1] for i, a in enumerate(argv[:-1])
              if a == '-o' and argv[i + 1].split('=', 1)[0] == name]
    return values[0] if values else None


@pytest.fixture(autouse=True)
def no_configured_key(monkeypatch):
    monkeypatch.setattr(plugin, '_default_private_key_file', lambda: None)


def test_reaches_the_instance_with_its_key_and_pinned_host_key():
    argv = ssh_argv(INSTANCE)
    assert argv[0] == 'ssh' and argv[-1] == 'root@ssh4.vast.ai'
    assert argv[argv.index('-p') + 1] == '34567'
    assert argv[argv.index('-i') + 1] == '/keys/my vast key' and option(argv, 'IdentitiesOnly') == 'yes'
    assert option(argv, 'UserKnownHostsFile') == '/pins/28765432'
    assert option(argv, 'StrictHostKeyChecking') == 'accept-new'


def test_never_rides_on_a_master_connection():
    # A master opened earlier would skip the host key check: every hand-built ssh is a connection of its own.
    argv = ssh_argv(dict(INSTANCE, ansible_ssh_extra_args='-o ControlMaster=auto'))
    assert option(argv, 'ControlMaster') == 'no' and option(argv, 'ControlPath') == 'none'


def test_options_given_come_first_so_they_win():
    argv = ssh_argv(INSTANCE, ['BatchMode=yes', 'StrictHostKeyChecking=yes'])
    assert option(argv, 'BatchMode') == 'yes' and option(argv, 'StrictHostKeyChecking') == 'yes'


def test_the_ssh_specific_key_variable_wins_as_in_ansibles_connection():
    argv = ssh_argv(dict(INSTANCE, ansible_ssh_private_key_file='/keys/ssh-specific'))
    assert argv[argv.index('-i') + 1] == '/keys/ssh-specific'


def test_without_a_key_variable_ansibles_private_key_file_setting_is_used(monkeypatch):
    monkeypatch.setattr(plugin, '_default_private_key_file', lambda: '/from/ansible.cfg')
    argv = ssh_argv({k: v for k, v in INSTANCE.items() if k != 'ansible_private_key_file'})
    assert argv[argv.index('-i') + 1] == '/from/ansible.cfg'


def test_without_any_key_ssh_takes_its_own_defaults():
    argv = ssh_argv({'inventory_hostname': 'box'})
    assert '-i' not in argv and '-p' not in argv and argv[-1] == 'box'


def test_the_inventory_name_when_there_is_no_ansible_host():
    assert ssh_argv({'inventory_hostname': 'box', 'ansible_user': 'me'})[-1] == 'me@box'


@pytest.mark.parametrize('bad', ['hostname', ['a'], None])
def test_anything_but_host_variables_is_refused(bad):
    with pytest.raises(AnsibleFilterError):
        ssh_argv(bad)


def test_a_string_of_options_is_refused():
    with pytest.raises(AnsibleFilterError, match='list of ssh options'):
        ssh_argv(INSTANCE, 'BatchMode=yes')


def test_registered_under_its_name():
    assert FilterModule().filters()['ssh_argv'] is ssh_argv
