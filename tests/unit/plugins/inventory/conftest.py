"""Fixtures for the voltx.vastai.vastai inventory plugin tests.

The plugin is loaded the way ``ansible-inventory`` loads it: through the plugin loader and the collection finder
(installed by tests/conftest.py), so its options come from its DOCUMENTATION.
"""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def clean_env(monkeypatch, tmp_path):
    """No key, URL or cache settings leak in from the machine running the tests; cwd is a scratch directory."""
    for name in ("VAST_API_KEY", "VAST_API_URL", "VAST_REQUEST_TIMEOUT", "XDG_CONFIG_HOME",
                 "ANSIBLE_INVENTORY_CACHE", "ANSIBLE_INVENTORY_CACHE_PLUGIN", "ANSIBLE_CACHE_PLUGIN_CONNECTION",
                 "ANSIBLE_INVENTORY_CACHE_CONNECTION", "ANSIBLE_INVENTORY_CACHE_TIMEOUT",
                 "VOLTX_VASTAI_KNOWN_HOSTS_DIR"):
        monkeypatch.delenv(name, raising=False)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(tmp_path)
