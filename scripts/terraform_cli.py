"""The Terraform CLI as the state scripts use it: run a command in a stack directory, read state.

Shared by ``migrate_bootstrap.py`` and ``force_unlock.py``; no project imports, so the tests can
drive it against any stack directory.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# An address that never exists: `untaint -allow-missing` on it takes the state lock and changes
# nothing, which makes it a provider-free "is the state locked?" probe.
_LOCK_PROBE_ADDRESS = "terraform_data.state_lock_probe"
_LOCK_ERROR = "Error acquiring the state lock"


class StateError(Exception):
    """A state operation failed; the message says what happened and what to do."""


@dataclass(frozen=True)
class StateInfo:
    lineage: str
    serial: int
    resources: int

    def __str__(self) -> str:
        return f"lineage {self.lineage}, serial {self.serial}, {self.resources} resource(s)"


@dataclass(frozen=True)
class LockInfo:
    """What Terraform prints about the holder of a state lock."""

    id: str
    who: str
    operation: str
    created: str

    def __str__(self) -> str:
        return f"ID {self.id} ({self.operation} by {self.who}, created {self.created})"


def state_info(text: str, source: str) -> StateInfo:
    """Lineage, serial and resource count of a state document; StateError if it is not one."""
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise StateError(f"{source}: not valid JSON ({exc})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("lineage"), str) or "serial" not in doc:
        raise StateError(f"{source}: not a Terraform state file (no lineage/serial)")
    if not isinstance(doc["serial"], int):
        raise StateError(f"{source}: serial is not an integer")
    return StateInfo(doc["lineage"], doc["serial"], len(doc.get("resources", [])))


def parse_lock_info(output: str) -> LockInfo | None:
    """The ``Lock Info:`` block of a failed lock attempt, or None if the output has none."""
    if _LOCK_ERROR not in output:
        return None
    fields = dict(re.findall(r"^\s+(ID|Who|Operation|Created):\s+(.*?)\s*$", output, re.MULTILINE))
    return LockInfo(
        fields.get("ID", ""), fields.get("Who", "?"), fields.get("Operation", "?"), fields.get("Created", "?")
    )


class Terraform:
    """``terraform`` (or ``$TERRAFORM_BINARY_NAME``) in one working directory."""

    def __init__(
        self,
        workdir: Path,
        env: Mapping[str, str] | None = None,
        binary: str | None = None,
        timeout: float = 900,
    ) -> None:
        self.workdir = workdir
        self.env = dict(env) if env is not None else None
        self.binary = binary or os.environ.get("TERRAFORM_BINARY_NAME", "terraform")
        self.timeout = timeout

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        cmd = [self.binary, *args]
        try:
            proc = subprocess.run(
                cmd,
                cwd=self.workdir,
                env=self.env,
                capture_output=True,
                text=True,
                timeout=self.timeout,
                check=False,
            )
        except FileNotFoundError:
            raise StateError(f"{self.binary} not found on PATH (set TERRAFORM_BINARY_NAME)") from None
        except subprocess.TimeoutExpired:
            raise StateError(f"`{' '.join(cmd)}` did not finish within {self.timeout:.0f} s") from None
        if check and proc.returncode != 0:
            raise StateError(
                f"`{' '.join(cmd)}` failed in {self.workdir} (exit {proc.returncode}):\n"
                + _tail(proc.stderr or proc.stdout)
            )
        return proc

    def init(self, *extra: str) -> None:
        self.run("init", "-input=false", "-no-color", *extra)

    def pull(self) -> StateInfo | None:
        """The backend's current state, or None when it holds none yet."""
        out = self.run("state", "pull").stdout
        if not out.strip():
            return None
        info = state_info(out, f"state of {self.workdir.name}")
        # A backend with nothing stored yet still answers with a blank, lineage-less document.
        return info if info.lineage else None

    def lock_holder(self) -> LockInfo | None:
        """Who holds the state lock now, or None if it is free (takes and releases it at once)."""
        proc = self.run(
            "untaint", "-no-color", "-allow-missing", "-lock-timeout=0s", _LOCK_PROBE_ADDRESS, check=False
        )
        if proc.returncode == 0:
            return None
        holder = parse_lock_info(proc.stderr + proc.stdout)
        if holder is None:
            raise StateError(f"cannot probe the state lock of {self.workdir}:\n{_tail(proc.stderr)}")
        return holder


def synthesized_backend(stack_dir: Path) -> dict[str, Any]:
    """``{type: settings}`` of the backend in a synthesized stack's ``cdk.tf.json``."""
    path = stack_dir / "cdk.tf.json"
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        backend: dict[str, Any] = doc["terraform"]["backend"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise StateError(f"{path}: no synthesized stack with a backend here ({exc})") from None
    return backend


def remote_state(stack_dir: Path, env: Mapping[str, str] | None, binary: str | None) -> StateInfo | None:
    """The state the stack's backend holds, read without touching the stack's own ``.terraform``.

    A scratch directory with only the backend block needs no provider plugins and leaves the
    stack directory's record of its previous backend alone (the migration depends on it).
    """
    backend = synthesized_backend(stack_dir)
    with tempfile.TemporaryDirectory(prefix="state-probe-") as scratch:
        work = Path(scratch)
        (work / "backend.tf.json").write_text(json.dumps({"terraform": {"backend": backend}}))
        tf = Terraform(work, env, binary)
        tf.init()
        return tf.pull()


def copy_exact(src: Path, dst: Path) -> None:
    """Copy a state file and prove the copy is byte-identical before anybody relies on it."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(src, dst)
    if dst.read_bytes() != src.read_bytes():
        raise StateError(f"backup {dst} differs from {src}")


def _tail(text: str, lines: int = 25) -> str:
    kept = [line for line in text.strip().splitlines() if line.strip()]
    return "\n".join("    " + line for line in kept[-lines:])
