"""Fixtures for the voltx.vastai.vastai inventory plugin tests.

The plugin is loaded the way ``ansible-inventory`` loads it: through the plugin loader and the collection finder,
so its options come from its DOCUMENTATION (with the ``constructed`` and ``inventory_cache`` fragments).
"""

from __future__ import annotations

import os
import sys

import pytest

from ansible.utils.collection_loader import AnsibleCollectionConfig
from ansible.utils.collection_loader._collection_finder import _AnsibleCollectionFinder

HERE = os.path.dirname(os.path.abspath(__file__))
BUILD = os.path.abspath(os.path.join(HERE, "..", "..", "..", "..", ".build"))


def _install_collection_finder():
    """Install Ansible's collection finder (as ansible-test units and ansible-inventory do) unless one is installed.

    It must run before this directory's test modules import ``ansible_collections``: the plugin loader only finds a
    collection whose package the finder created (it carries the collection's meta/runtime.yml).
    """
    if AnsibleCollectionConfig.collection_finder is not None:
        return
    _AnsibleCollectionFinder(paths=[BUILD])._install()
    # Another test directory may already have imported the collection as a plain namespace package; let the finder
    # recreate the package modules (submodules already imported stay as they are).
    for name in ("ansible_collections.voltx.vastai", "ansible_collections.voltx", "ansible_collections"):
        module = sys.modules.get(name)
        if module is not None and not hasattr(module, "_collection_meta") and name.count(".") == 2:
            sys.modules.pop(name)
            sys.modules.pop("ansible_collections.voltx", None)
            sys.modules.pop("ansible_collections", None)


_install_collection_finder()


@pytest.fixture(autouse=True)
def clean_env(monkeypatch, tmp_path):
    """No key, URL or cache settings leak in from the machine running the tests; cwd is a scratch directory."""
    for name in ("VAST_API_KEY", "VAST_API_URL", "VAST_REQUEST_TIMEOUT", "XDG_CONFIG_HOME",
                 "ANSIBLE_INVENTORY_CACHE", "ANSIBLE_INVENTORY_CACHE_PLUGIN", "ANSIBLE_CACHE_PLUGIN_CONNECTION",
                 "ANSIBLE_INVENTORY_CACHE_CONNECTION", "ANSIBLE_INVENTORY_CACHE_TIMEOUT"):
        monkeypatch.delenv(name, raising=False)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(tmp_path)
