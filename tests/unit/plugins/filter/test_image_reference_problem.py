# -*- coding: utf-8 -*-
# Copyright: (c) 2026, voltx engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import pytest

from ansible.errors import AnsibleFilterError
from ansible_collections.voltx.vastai.plugins.filter.image_reference_problem import FilterModule


def test_a_good_reference_gives_an_empty_string_and_a_bad_one_the_reason():
    problem = FilterModule().filters()['image_reference_problem']
    assert problem('nvidia/cuda:12.8.0-devel-ubuntu22.04') == ''
    assert 'upper case' in problem('nvidia/CUDA:12.8.0-devel-ubuntu22.04')
    assert problem(None) == 'is empty'
    with pytest.raises(AnsibleFilterError):
        problem(['nvidia/cuda'])
