# -*- coding: utf-8 -*-
# Copyright: (c) 2026, voltx engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import pytest

from ansible.errors import AnsibleFilterError
from ansible_collections.voltx.vastai.plugins.filter.close_matches import FilterModule, close_matches

BUILD = ['build_bins', 'build_cargo_profile', 'build_dir', 'build_git_repo', 'build_git_version', 'build_log',
         'build_job', 'build_source']


def test_a_typo_is_paired_with_the_option_it_means():
    assert close_matches(['build_cargo_profle', 'build_bin'], BUILD, prefix='build_') == {
        'build_cargo_profle': 'build_cargo_profile', 'build_bin': 'build_bins'}


@pytest.mark.parametrize('name', ['build_number', 'build_id', 'build_tag', 'build_host', 'build_source_dir'])
def test_a_name_the_user_owns_passes(name):
    assert close_matches([name], BUILD, prefix='build_') == {}


def test_known_names_are_not_reported():
    assert close_matches(['build_dir', 'build_log'], BUILD, prefix='build_') == {}


def test_the_shared_prefix_does_not_make_names_alike():
    # Whole names share 'build_' and look alike; without the prefix 'id' is nothing like 'dir'.
    assert close_matches(['build_id'], BUILD, cutoff=0.8) == {'build_id': 'build_dir'}
    assert close_matches(['build_id'], BUILD, cutoff=0.8, prefix='build_') == {}


def test_cutoff():
    assert close_matches(['build_git_ref'], BUILD, prefix='build_') == {}
    assert close_matches(['build_git_ref'], BUILD, cutoff=0.8, prefix='build_') == {'build_git_ref': 'build_git_repo'}
    assert close_matches(['build_git_ref'], BUILD, cutoff='0.8', prefix='build_') == {'build_git_ref': 'build_git_repo'}


@pytest.mark.parametrize('args', [('build_dir', BUILD), (['build_dir'], 'build_dir'), (['x'], BUILD, 'high'),
                                  (['x'], BUILD, 1.5)])
def test_wrong_arguments_fail(args):
    with pytest.raises(AnsibleFilterError):
        close_matches(*args)


def test_the_filter_is_registered():
    assert FilterModule().filters()['close_matches'] is close_matches
