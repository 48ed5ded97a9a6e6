"""Fixtures for the module tests."""

from __future__ import annotations

import pytest

from vast_fakes import FakeClock, FakeVast


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def vast(clock):
    return FakeVast(clock=clock)
