# -*- coding: utf-8 -*-
# Copyright: (c) 2026, voltx engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
name: close_matches
short_description: Pair each name with the known name it most likely misspells
version_added: 1.0.0
author:
  - voltx engineers
description:
  - For each name in the input, finds the closest of O(known) with Python's C(difflib.get_close_matches) and returns
    the pairs whose similarity is at least O(cutoff).
  - Names with no close known name are left out, so variables a user owns (say C(build_number) next to the role
    voltx.vastai.build) pass, while a typo (C(build_cargo_profle)) is reported with the option it probably meant.
  - Names that are themselves in O(known) are left out.
positional: known
options:
  _input:
    description: The names to look at.
    type: list
    elements: str
    required: true
  known:
    description: The names that are right (e.g. every option of a role and the facts it publishes).
    type: list
    elements: str
    required: true
  cutoff:
    description:
      - Least similarity (0 to 1, C(difflib.SequenceMatcher.ratio)) for a name to count as a misspelling.
    type: float
    default: 0.85
  prefix:
    description:
      - A prefix every name shares (e.g. C(build_)); it is left out of the comparison so that it does not make
        unrelated names look alike.
    type: str
    default: ''
"""

EXAMPLES = r"""
- name: Report the build_* variables that look like a misspelt option
  vars:
    _suspects: "{{ ['build_cargo_profle', 'build_number'] | voltx.vastai.close_matches(['build_cargo_profile', 'build_dir'], prefix='build_') }}"
  ansible.builtin.debug:
    msg: "{{ _suspects }}"  # {'build_cargo_profle': 'build_cargo_profile'}
"""

RETURN = r"""
_value:
  description: Each misspelt name, mapped to the known name it most likely means.
  type: dict
"""

import difflib

from ansible.errors import AnsibleFilterError
from ansible.module_utils.common.text.converters import to_text


def close_matches(names, known, cutoff=0.85, prefix=''):
    """Map each name of ``names`` to its closest name in ``known``, when they are at least ``cutoff`` alike."""
    if isinstance(names, (str, bytes)) or not isinstance(names, (list, tuple, set, frozenset)):
        raise AnsibleFilterError('close_matches expects a list of names, got %s' % type(names).__name__)
    if isinstance(known, (str, bytes)) or not isinstance(known, (list, tuple, set, frozenset)):
        raise AnsibleFilterError('close_matches expects a list of known names, got %s' % type(known).__name__)
    try:
        cutoff = float(cutoff)
    except (TypeError, ValueError):
        raise AnsibleFilterError('close_matches: cutoff must be a number, got %r' % (cutoff,))
    if not 0.0 <= cutoff <= 1.0:
        raise AnsibleFilterError('close_matches: cutoff must be between 0 and 1, got %s' % cutoff)
    prefix = to_text(prefix)

    def strip(name):
        return name[len(prefix):] if prefix and name.startswith(prefix) else name

    known = sorted(set(to_text(k) for k in known))
    by_stem = {}
    for name in known:
        by_stem.setdefault(strip(name), name)
    result = {}
    for name in sorted(set(to_text(n) for n in names)):
        if name in known:
            continue
        match = difflib.get_close_matches(strip(name), list(by_stem), n=1, cutoff=cutoff)
        if match:
            result[name] = by_stem[match[0]]
    return result


class FilterModule(object):
    def filters(self):
        return {'close_matches': close_matches}
