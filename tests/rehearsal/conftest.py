"""The rehearsal itself (test_boot.py) starts real servers and takes minutes: collected only with
REHEARSAL=1 (``make rehearse`` runs the harness itself; ``REHEARSAL=1 pytest tests/rehearsal``
runs it). The other modules test the harness's parts and run everywhere."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ENABLED = os.environ.get("REHEARSAL") == "1"
SERVERS = frozenset({"test_boot.py"})  # the modules that start servers


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "rehearsal: boot rehearsal on this machine (REHEARSAL=1)")


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    # Not collected at all by default: no server, no skip noise in `make test`.
    return None if ENABLED or collection_path.name not in SERVERS else True
