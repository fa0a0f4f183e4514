"""What the rehearsal needs on this machine, installed only when missing: Debian packages (once
``apt-get update``, then ``apt-get install`` with a lock timeout: other jobs may run apt), the MLflow
venv with exactly the boot script's ``pip install`` line and constraints, and an AWS CLI."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from ops.mlflow.venv import ensure as mlflow_venv_of

# program on PATH (or absolute path) -> Debian package
PACKAGES = {
    "mariadbd": "mariadb-server",
    "mariadb": "mariadb-client",
    "nginx": "nginx",
    "redis-server": "redis-server",
    "chromium": "chromium",
    "openssl": "openssl",
}
SBIN = ("/usr/sbin", "/sbin")
APT_TIMEOUT = 1800
PIP_TIMEOUT = 1800
PIP_LINE = re.compile(r"/bin/pip install [^\n]*--constraint \S+ \\\n([^\n]+)\n")
PINS = re.compile(r"<<'PINS'\n(.*?)\nPINS\n", re.S)


def _present(program: str) -> bool:
    return shutil.which(program) is not None or any(Path(d, program).exists() for d in SBIN)


def apt_packages() -> list[str]:
    """Install the missing Debian packages; returns what was installed."""
    missing = sorted({pkg for program, pkg in PACKAGES.items() if not _present(program)})
    if not missing:
        return []
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-q"], check=True, env=env, timeout=APT_TIMEOUT)
    subprocess.run(
        ["apt-get", "install", "-y", "-q", "-o", "DPkg::Lock::Timeout=600", *missing],
        check=True,
        env=env,
        timeout=APT_TIMEOUT,
    )
    return missing


@dataclass(frozen=True)
class Requirements:
    """What the boot script installs: the packages of its pip line, under its constraints."""

    packages: tuple[str, ...]
    constraints: tuple[str, ...]

    @classmethod
    def of(cls, script: str) -> Requirements:
        line, pins = PIP_LINE.search(script), PINS.search(script)
        if line is None or pins is None:
            raise ValueError(
                "the boot script has no `pip install --constraint FILE ...` line or PINS heredoc"
            )
        return cls(tuple(a.strip('"') for a in line.group(1).split()), tuple(pins.group(1).splitlines()))


def mlflow_venv(venv: Path, requirements: Requirements) -> None:
    """The venv the boot script would build, with the same packages and constraints: the one the
    ``ops mlflow`` commands use too (ops/mlflow/venv.py; rebuilt only when they change)."""
    mlflow_venv_of(requirements.packages, requirements.constraints, venv)


def aws_cli(tools: Path) -> Path:
    """The directory holding an ``aws`` program (the boot script calls it as Amazon Linux has it)."""
    found = shutil.which("aws")
    if found:
        return Path(found).parent
    if not (tools / "bin" / "aws").exists():
        subprocess.run([sys.executable, "-m", "venv", str(tools)], check=True, timeout=PIP_TIMEOUT)
        subprocess.run(
            [str(tools / "bin" / "pip"), "install", "--quiet", "awscli"], check=True, timeout=PIP_TIMEOUT
        )
    return tools / "bin"
