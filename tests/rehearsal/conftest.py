"""The rehearsal tests start real servers and take minutes: collected only with REHEARSAL=1
(``make rehearse`` runs the harness itself; ``REHEARSAL=1 pytest tests/rehearsal`` runs these)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ENABLED = os.environ.get("REHEARSAL") == "1"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "rehearsal: boot rehearsal on this machine (REHEARSAL=1)")


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    # Not collected at all by default: no synthesis, no server, no skip noise in `make test`.
    return None if ENABLED else True
