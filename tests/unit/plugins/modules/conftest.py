"""Fixtures for the module tests."""

from __future__ import annotations

import pytest

from vast_fakes import FakeClock, FakeVast


@pytest.fixture(autouse=True)
def blocklist_file(tmp_path, monkeypatch):
    """Every module test reads (and writes) its own blocklist, never the user's."""
    path = tmp_path / "blocklist.json"
    monkeypatch.setenv("VOLTX_VASTAI_BLOCKLIST", str(path))
    return path


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def vast(clock):
    return FakeVast(clock=clock)
