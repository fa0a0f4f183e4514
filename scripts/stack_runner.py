"""What the daily commands share: stack selection, synthesis, and running a tool in a stack's name.

Every line a tool prints is shown as it printed it, behind the stack's name (``mlflow-dev | ...``),
so the output of several stacks stays readable and a Terraform error says which stack it is about.
Long steps print a progress line (stack, environment, step, elapsed time) when they start, every
``HEARTBEAT_SECONDS`` while they run, and when they end.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from platform_config import naming

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUTDIR = ROOT / "cdktf.out"
HEARTBEAT_SECONDS = 30.0


class UsageError(Exception):
    """A bad argument: reported in one line with exit code 2."""


@dataclass(frozen=True)
class Target:
    """One synthesized stack that a command works on."""

    kind: str
    env: str
    outdir: Path

    @property
    def name(self) -> str:
        return naming.stack_id(self.kind, self.env)

    @property
    def directory(self) -> Path:
        return self.outdir / "stacks" / self.name


@dataclass(frozen=True)
class Result:
    returncode: int
    stdout: str
    stderr: str
    elapsed: float

    @property
    def ok(self) -> bool:
        return self.returncode == 0


def parse_kinds(raw: str | None) -> tuple[str, ...]:
    """``"mlflow,bootstrap"`` -> kinds in deployment order; empty means every kind."""
    if not raw or not raw.strip():
        return naming.STACK_KINDS
    wanted = [k.strip() for k in raw.split(",") if k.strip()]
    unknown = [k for k in wanted if k not in naming.STACK_KINDS]
    if unknown:
        raise UsageError(
            f"unknown stack kind {', '.join(map(repr, unknown))} (known: {', '.join(naming.STACK_KINDS)})"
        )
    return tuple(k for k in naming.STACK_KINDS if k in wanted)


def check_env_name(env: str) -> str:
    if not naming.ENV_NAME_RE.match(env):
        raise UsageError(f"bad environment name {env!r}: expected lower-case letters and digits, e.g. dev")
    return env


def targets(env: str, kinds: Sequence[str], outdir: Path, reverse: bool = False) -> list[Target]:
    """The stacks of one environment in deployment order (bootstrap first), or the reverse."""
    ordered = [Target(kind, env, outdir) for kind in naming.STACK_KINDS if kind in kinds]
    return ordered[::-1] if reverse else ordered


def terraform_binary() -> str:
    """The same switch the cdktf CLI honours, so plan and deploy use one binary."""
    return os.environ.get("TERRAFORM_BINARY_NAME", "terraform")


def cdktf_command() -> list[str]:
    """The pinned cdktf CLI from node_modules; ``$MLOPS_CDKTF`` replaces it (tests use a fake)."""
    override = os.environ.get("MLOPS_CDKTF")
    if override:
        return shlex.split(override)
    local = ROOT / "node_modules" / ".bin" / "cdktf"
    if local.exists():
        return [str(local)]
    return ["npx", "--no-install", "cdktf"]


class Console:
    """Progress and prefixed tool output; one instance per command run."""

    def __init__(self, out: TextIO | None = None, err: TextIO | None = None) -> None:
        self.out = out or sys.stdout
        self.err = err or sys.stderr
        self._lock = threading.Lock()

    def line(self, text: str, stream: TextIO | None = None) -> None:
        with self._lock:
            target = stream or self.out
            target.write(text + "\n")
            target.flush()

    def progress(self, label: str, env: str, text: str) -> None:
        self.line(f"==> {label} ({env}): {text}")

    def run(
        self,
        cmd: Sequence[str],
        *,
        label: str,
        env_name: str,
        step: str,
        cwd: Path,
        env: Mapping[str, str] | None = None,
        show_stdout: bool = True,
        show_stderr: bool = True,
        stdout_filter: Callable[[str], str] | None = None,
        heartbeat: float = HEARTBEAT_SECONDS,
        announce: bool = True,
    ) -> Result:
        """Run ``cmd``, showing its stdout and stderr behind ``label`` as they come (unless told not to).

        ``announce=False`` keeps a quick step's progress lines out unless it fails.
        """
        if announce:
            self.progress(label, env_name, f"{step} ...")
        start = time.monotonic()
        try:
            proc = subprocess.Popen(
                list(cmd),
                cwd=cwd,
                env=dict(env) if env is not None else None,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                errors="replace",
            )
        except FileNotFoundError:
            message = f"{cmd[0]}: command not found"
            self.line(f"{label} | {message}", self.err)
            self.progress(label, env_name, f"{step} FAILED (not installed)")
            return Result(127, "", message, 0.0)
        assert proc.stdout is not None and proc.stderr is not None
        out_lines: list[str] = []
        err_lines: list[str] = []

        def pump(pipe: TextIO, sink: list[str], stream: TextIO, show: bool) -> None:
            for raw in pipe:
                text = raw.rstrip("\n")
                sink.append(text)
                if show:
                    shown = stdout_filter(text) if stdout_filter and stream is self.out else text
                    self.line(f"{label} | {shown}", stream)

        readers = [
            threading.Thread(target=pump, args=(proc.stdout, out_lines, self.out, show_stdout)),
            threading.Thread(target=pump, args=(proc.stderr, err_lines, self.err, show_stderr)),
        ]
        for reader in readers:
            reader.start()
        try:
            while True:
                try:
                    proc.wait(timeout=heartbeat)
                    break
                except subprocess.TimeoutExpired:
                    self.progress(label, env_name, f"{step} still running ({_seconds(start)})")
        except KeyboardInterrupt:
            # The child got the same SIGINT; let Terraform release its state lock before leaving.
            self.line(f"{label} | interrupted: waiting for {cmd[0]} to stop cleanly", self.err)
            proc.wait()
            raise
        finally:
            for reader in readers:
                reader.join()
        elapsed = time.monotonic() - start
        verdict = "done" if proc.returncode == 0 else f"FAILED (exit {proc.returncode})"
        if announce or proc.returncode != 0:
            self.progress(label, env_name, f"{step} {verdict} in {elapsed:.1f} s")
        return Result(proc.returncode, "\n".join(out_lines), "\n".join(err_lines), elapsed)


def synthesize(
    console: Console, env: str, kinds: Sequence[str], outdir: Path, python: str | None = None
) -> bool:
    """``main.py`` for one environment and the selected kinds only: other kinds' providers stay unloaded."""
    child_env = dict(os.environ)
    child_env.update(
        MLOPS_ENVS=env,
        MLOPS_STACKS=",".join(kinds),
        CDKTF_OUTDIR=str(outdir),
        JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION=child_env.get(
            "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20"
        ),
    )
    result = console.run(
        [python or sys.executable, str(ROOT / "main.py")],
        label="synth",
        env_name=env,
        step=f"synthesize {', '.join(kinds)}",
        cwd=ROOT,
        env=child_env,
    )
    return result.ok


def confirm(question: str, expected: str, console: Console, stdin: TextIO | None = None) -> bool:
    """Ask on stdin; only the exact ``expected`` answer confirms. No stdin (CI) means no."""
    source = stdin or sys.stdin
    console.line(f"{question}\nType '{expected}' to continue: ")
    answer = source.readline()
    if not answer:
        console.line(
            "no answer on standard input: nothing done (AUTO_APPROVE=1 for unattended runs)", console.err
        )
        return False
    if answer.strip() != expected:
        console.line(f"answer was not '{expected}': nothing done", console.err)
        return False
    return True


def _seconds(start: float) -> str:
    return f"{time.monotonic() - start:.0f} s"
