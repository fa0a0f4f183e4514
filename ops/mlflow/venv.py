"""``.venv-mlflow``: the MLflow the instances run, for the commands that speak MLflow's own client
(``ops mlflow user|grant|revoke|admin``), for the upgrade's target release, and for the boot
rehearsal. Built from the boot script's pip line and pins (platform_config/mlflow_constraints.py);
rebuilt when they change. Kept out of the app's .venv: MLflow and its dependencies would pin what
the CDKTF app may use."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from ops.runner import ROOT, CommandError

VENV = ROOT / ".venv-mlflow"
TIMEOUT = 1800


def stamp_of(packages: Sequence[str], constraints: Sequence[str]) -> str:
    return hashlib.sha256("\n".join([*packages, "--", *constraints]).encode()).hexdigest()


def ensure(
    packages: Sequence[str] | None = None,
    constraints: Sequence[str] | None = None,
    venv: Path = VENV,
    python: str = "python3.11",
) -> Path:
    """The venv's Python, with exactly ``packages`` under ``constraints`` (default: the release the
    instances run); pip skips what is there already."""
    if packages is None or constraints is None:
        from constructs_lib.user_data import PIP_REQUIREMENTS
        from platform_config.mlflow_constraints import CONSTRAINTS, MLFLOW_VERSION

        packages = [f"{PIP_REQUIREMENTS[0]}=={MLFLOW_VERSION}", *PIP_REQUIREMENTS[1:]]
        constraints = CONSTRAINTS
    stamp, interpreter = venv / ".installed", venv / "bin" / "python"
    wanted = stamp_of(packages, constraints)
    if interpreter.exists() and stamp.exists() and stamp.read_text() == wanted:
        return interpreter
    print(f"installing {' '.join(packages)} into {venv} (once) ...", file=sys.stderr, flush=True)
    try:
        if not interpreter.exists():
            subprocess.run([python, "-m", "venv", str(venv)], check=True, timeout=TIMEOUT)
        with tempfile.NamedTemporaryFile("w", suffix=".txt") as pins:
            pins.write("\n".join(constraints) + "\n")
            pins.flush()
            subprocess.run(
                [str(venv / "bin" / "pip"), "install", "--quiet", "--disable-pip-version-check",
                 "--constraint", pins.name, *packages],
                check=True,
                timeout=TIMEOUT,
            )  # fmt: skip
    except (OSError, subprocess.SubprocessError) as exc:
        raise CommandError(f"could not build {venv}: {exc}") from None
    stamp.write_text(wanted)
    return interpreter
