"""What the rehearsal needs on this machine, installed only when missing: Debian packages (once
``apt-get update``, then ``apt-get install`` with a lock timeout: other jobs may run apt), the MLflow
venv with exactly the pins of the boot script's ``pip install`` line, and an AWS CLI."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

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
PIP_LINE = re.compile(r'/bin/pip install [^\n]*\\\n((?:\s*"[^"]+==[^"]+"\s*)+)')


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


def pins(script: str) -> list[str]:
    """The ``name==version`` arguments of the boot script's pip install line."""
    match = PIP_LINE.search(script)
    if match is None:
        raise ValueError('the boot script has no `pip install "name==version" ...` line')
    return re.findall(r'"([^"]+==[^"]+)"', match.group(1))


def mlflow_venv(venv: Path, requirements: list[str]) -> None:
    """The venv the boot script would build, with the same pins (pip skips what is satisfied)."""
    if not (venv / "bin" / "python").exists():
        subprocess.run(["python3.11", "-m", "venv", str(venv)], check=True, timeout=PIP_TIMEOUT)
    subprocess.run(
        [str(venv / "bin" / "pip"), "install", "--quiet", "--disable-pip-version-check", *requirements],
        check=True,
        timeout=PIP_TIMEOUT,
    )


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
