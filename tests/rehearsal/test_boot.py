"""The rehearsal itself: today only the known defects of issue 12 may fail; with the boot-script
fixes (rehearsal/fixes/issue-12.patch) and a custom host for prd (custom-host.patch: stands for the
configuration fix of item 2) every step passes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.rehearsal

ROOT = Path(__file__).resolve().parents[2]
FIXES = [ROOT / "rehearsal" / "fixes" / name for name in ("issue-12.patch", "custom-host.patch")]


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
def test_only_known_defects_fail(tmp_path: Path, env: str) -> None:
    failed = failures(rehearse(tmp_path, "--env", env))
    assert [f for f in failed if not f[1]] == []


@pytest.mark.parametrize("env", ["dev", "prd"])
def test_the_fixes_pass(tmp_path: Path, env: str) -> None:
    patches = [arg for patch in FIXES for arg in ("--patch", str(patch))]
    assert failures(rehearse(tmp_path, "--env", env, *patches)) == []
