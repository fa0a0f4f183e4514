"""The rehearsal itself: on the boot script as synthesized (the fixes are in the code, no
patch), every step passes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.rehearsal

ROOT = Path(__file__).resolve().parents[2]


def rehearse(tmp_path: Path, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "rehearsal", "--keep", str(tmp_path), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )
    assert done.returncode in (0, 1), done.stderr[-2000:]
    return done.stdout


def failures(output: str) -> list[tuple[str, str]]:
    """(step, defect) of every failed row of the table."""
    out = []
    for line in output.splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if len(cells) == 5 and cells[1] == "FAIL":
            out.append((cells[0], cells[3]))
    return out


@pytest.mark.parametrize("env", ["dev", "prd"])
def test_every_step_passes(tmp_path: Path, env: str) -> None:
    assert failures(rehearse(tmp_path, "--env", env)) == []
