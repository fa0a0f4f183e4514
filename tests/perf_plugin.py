"""pytest plugin for the cost of importing the provider packages in the test session.

Registered from tests/conftest.py (``pytest_plugins``). Collection imports every test module and
with them the provider packages, so the lazy provider import must be in place before it starts,
and the garbage collector is paused meanwhile: the packages create ~10^6 long-lived objects and
collecting while they are created is wasted work (what ``stacks.app.gc_paused`` does for a synth;
not imported here so that test runs that never touch jsii do not start it).
"""

from __future__ import annotations

import gc
from collections.abc import Generator

import pytest

from stacks import provider_import


def pytest_configure(config: pytest.Config) -> None:
    provider_import.install()


@pytest.hookimpl(wrapper=True)
def pytest_collection(session: pytest.Session) -> Generator[None, object, object]:
    gc.disable()
    try:
        return (yield)
    finally:
        # Move everything collection created out of the collector's sight for the whole session.
        gc.freeze()
        gc.enable()
