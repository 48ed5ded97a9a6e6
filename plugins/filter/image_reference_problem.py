# -*- coding: utf-8 -*-
# Copyright: (c) 2026, voltx engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
name: image_reference_problem
short_description: Say why a Docker image reference is malformed
version_added: 1.0.0
author:
  - voltx engineers
description:
  - Checks a Docker image reference against docker's grammar (C([registry[:port]/]name[:tag][@digest]), the name in
    lower case), accepting Vast.ai's own tag C(:@vastai-automatic-tag) too, as M(voltx.vastai.instance) checks its
    O(voltx.vastai.instance#module:image) option.
  - Returns an empty string for a well-formed reference, else a phrase such as C(has upper case letters in the
    repository name ...), meant to follow the image in a message.
  - Only the syntax is checked, on the controller; whether the registry holds the image is not.
options:
  _input:
    description: The image reference.
    type: str
    required: true
"""

EXAMPLES = r"""
- name: Stop before renting when the image cannot be a Docker image
  vars:
    _problem: "{{ vastai_image | voltx.vastai.image_reference_problem }}"
  ansible.builtin.assert:
    that: _problem | length == 0
    fail_msg: "vastai_image '{{ vastai_image }}' {{ _problem }}"
"""

RETURN = r"""
_value:
  description: Why the reference is malformed, or an empty string when it is well formed.
  type: str
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.voltx.vastai.plugins.module_utils._instance import image_reference_problem as _problem


def image_reference_problem(image):
    if image is not None and not isinstance(image, str):
        raise AnsibleFilterError('image_reference_problem expects a string, got %s' % type(image).__name__)
    return _problem(image) or ''


class FilterModule(object):
    def filters(self):
        return {'image_reference_problem': image_reference_problem}
