"""Makes the checkout importable as ``ansible_collections.voltx.vastai`` for every test.

The checkout is linked at .build/ansible_collections/voltx/vastai and Ansible's collection finder is installed,
as ansible-test units and ansible-inventory do, so plugins load through the plugin loader with the
collection's meta/runtime.yml.
"""

import os
import sys

from ansible.utils.collection_loader import AnsibleCollectionConfig
from ansible.utils.collection_loader._collection_finder import _AnsibleCollectionFinder

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.path.join(ROOT, ".build")
LINK = os.path.join(BUILD, "ansible_collections", "voltx", "vastai")

if not os.path.islink(LINK):
    os.makedirs(os.path.dirname(LINK), exist_ok=True)
    os.symlink(os.path.relpath(ROOT, os.path.dirname(LINK)), LINK)
if AnsibleCollectionConfig.collection_finder is None:
    _AnsibleCollectionFinder(paths=[BUILD])._install()  # pylint: disable=protected-access
EMULATOR = os.path.join(ROOT, "tests", "emulator")
if EMULATOR not in sys.path:
    sys.path.insert(0, EMULATOR)
