"""The one way the CLI runs an external tool (terraform, cdktf, ruff, checkov, linters).

``execute`` is the only place that starts a process. ``Console.run`` shows a tool's output as it
comes, every line behind a label (``mlflow-dev | ...``), with progress lines when a step starts,
every ``HEARTBEAT_SECONDS`` while it runs, and when it ends. ``Terraform`` runs quietly in one
working directory and turns a failure into a ``CommandError`` that says what failed.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TextIO

ROOT = Path(__file__).resolve().parent.parent
HEARTBEAT_SECONDS = 30.0

# An address that never exists: `untaint -allow-missing` on it takes the state lock and changes
# nothing, which makes it a provider-free "is the state locked?" probe.
_LOCK_PROBE_ADDRESS = "terraform_data.state_lock_probe"
_LOCK_ERROR = "Error acquiring the state lock"


class UsageError(Exception):
    """A bad argument: reported in one line, exit code 2."""


class CommandError(Exception):
    """A step failed; the message says what happened and what to do. Exit code 1."""


@dataclass(frozen=True)
class Result:
    returncode: int
    stdout: str
    stderr: str
    elapsed: float

    @property
    def ok(self) -> bool:
        return self.returncode == 0


def execute(
    cmd: Sequence[str],
    *,
    cwd: Path,
    env: Mapping[str, str] | None = None,
    input_text: str | None = None,
    on_stdout: Callable[[str], None] | None = None,
    on_stderr: Callable[[str], None] | None = None,
    on_tick: Callable[[int], None] | None = None,
    tick_seconds: float = HEARTBEAT_SECONDS,
    on_interrupt: Callable[[], None] | None = None,
    timeout: float | None = None,
) -> Result:
    """Run ``cmd`` to completion; stdout and stderr are collected and passed on line by line.

    ``on_tick(pid)`` runs every ``tick_seconds`` while the process lives. Raises
    FileNotFoundError when the tool is not installed, subprocess.TimeoutExpired (after killing
    it) when it outlives ``timeout``.
    """
    start = time.monotonic()
    proc = subprocess.Popen(
        list(cmd),
        cwd=cwd,
        env=dict(env) if env is not None else None,
        stdin=subprocess.DEVNULL if input_text is None else subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        errors="replace",
    )
    assert proc.stdout is not None and proc.stderr is not None
    out_lines: list[str] = []
    err_lines: list[str] = []

    def pump(pipe: IO[str], sink: list[str], callback: Callable[[str], None] | None) -> None:
        for raw in pipe:
            text = raw.rstrip("\n")
            sink.append(text)
            if callback is not None:
                callback(text)

    def feed(pipe: IO[str], text: str) -> None:
        with pipe:
            pipe.write(text)

    threads = [
        threading.Thread(target=pump, args=(proc.stdout, out_lines, on_stdout)),
        threading.Thread(target=pump, args=(proc.stderr, err_lines, on_stderr)),
    ]
    if input_text is not None:
        assert proc.stdin is not None
        threads.append(threading.Thread(target=feed, args=(proc.stdin, input_text)))
    for thread in threads:
        thread.start()
    deadline = None if timeout is None else start + timeout
    try:
        while True:
            wait = (
                tick_seconds if deadline is None else max(0.0, min(tick_seconds, deadline - time.monotonic()))
            )
            try:
                proc.wait(timeout=wait)
                break
            except subprocess.TimeoutExpired:
                if deadline is not None and time.monotonic() >= deadline:
                    proc.kill()
                    proc.wait()
                    raise subprocess.TimeoutExpired(list(cmd), timeout or 0.0) from None
                if on_tick is not None:
                    on_tick(proc.pid)
    except KeyboardInterrupt:
        # The child got the same SIGINT; let Terraform release its state lock before leaving.
        if on_interrupt is not None:
            on_interrupt()
        proc.wait()
        raise
    finally:
        for thread in threads:
            thread.join()
    return Result(proc.returncode, "\n".join(out_lines), "\n".join(err_lines), time.monotonic() - start)


class Console:
    """Progress lines and prefixed tool output; one instance per command run."""

    def __init__(self, out: TextIO | None = None, err: TextIO | None = None) -> None:
        self.out = out or sys.stdout
        self.err = err or sys.stderr
        self._lock = threading.Lock()

    def line(self, text: str, stream: TextIO | None = None) -> None:
        with self._lock:
            target = stream or self.out
            target.write(text + "\n")
            target.flush()

    def error(self, text: str) -> None:
        self.line(text, self.err)

    def progress(self, label: str, env_name: str, text: str) -> None:
        where = f" ({env_name})" if env_name else ""
        self.line(f"==> {label}{where}: {text}")

    def run(
        self,
        cmd: Sequence[str],
        *,
        label: str,
        step: str,
        cwd: Path,
        env_name: str = "",
        env: Mapping[str, str] | None = None,
        show_stdout: bool = True,
        show_stderr: bool = True,
        stdout_filter: Callable[[str], str | None] | None = None,
        heartbeat: float = HEARTBEAT_SECONDS,
        announce: bool = True,
        success_codes: Sequence[int] = (0,),
    ) -> Result:
        """Run ``cmd`` with its output behind ``label``; ``stdout_filter`` rewrites (or, returning
        None, hides) a stdout line. ``announce=False`` keeps a quick step's progress lines out
        unless it fails; ``success_codes`` are the exit codes reported as done (``plan
        -detailed-exitcode`` exits 2 when there are changes)."""
        if announce:
            self.progress(label, env_name, f"{step} ...")
        begin = time.monotonic()

        def show_out(text: str) -> None:
            shown = stdout_filter(text) if stdout_filter else text
            if shown is not None:
                self.line(f"{label} | {shown}")

        try:
            result = execute(
                cmd,
                cwd=cwd,
                env=env,
                on_stdout=show_out if show_stdout else None,
                on_stderr=(lambda text: self.error(f"{label} | {text}")) if show_stderr else None,
                on_tick=lambda _pid: self.progress(
                    label, env_name, f"{step} still running ({_since(begin)})"
                ),
                tick_seconds=heartbeat,
                on_interrupt=lambda: self.error(
                    f"{label} | interrupted: waiting for {cmd[0]} to stop cleanly"
                ),
            )
        except FileNotFoundError:
            message = f"{cmd[0]}: command not found"
            self.error(f"{label} | {message}")
            self.progress(label, env_name, f"{step} FAILED (not installed)")
            return Result(127, "", message, 0.0)
        succeeded = result.returncode in success_codes
        if announce or not succeeded:
            verdict = "done" if succeeded else f"FAILED (exit {result.returncode})"
            self.progress(label, env_name, f"{step} {verdict} in {result.elapsed:.1f} s")
        return result

    def confirm(self, question: str, expected: str, stdin: TextIO | None = None) -> bool:
        """Ask on stdin; only the exact ``expected`` answer confirms. No stdin (CI) means no."""
        self.line(f"{question}\nType '{expected}' to continue: ")
        answer = (stdin or sys.stdin).readline()
        if not answer:
            self.error("no answer on standard input: nothing done (AUTO_APPROVE=1 for unattended runs)")
            return False
        if answer.strip() != expected:
            self.error(f"answer was not '{expected}': nothing done")
            return False
        return True


def _since(begin: float) -> str:
    return f"{time.monotonic() - begin:.0f} s"


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


def automation_env(**extra: str) -> dict[str, str]:
    """The process environment for Terraform and cdktf, in automation mode: no "run terraform
    apply" hints, no prompts for missing values, plain line-by-line cdktf output over a pipe."""
    env = dict(os.environ)
    env.setdefault("TF_IN_AUTOMATION", "1")
    env.setdefault("TF_INPUT", "0")
    env.setdefault("CI", "1")
    env.update(extra)
    return env


# How GNU make hands its command-line variables (SUITE=1, ENV=...) to the makes it starts: in
# MAKEFLAGS (after " -- "), and exported into their environment under their own names.
MAKE_VARIABLES = ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES")


def outside_make(env: Mapping[str, str]) -> dict[str, str]:
    """``env`` without what a calling make passes down: a make started with it sees only its own
    command line, not the variables of the ``make`` this process runs under."""
    _, _, overrides = env.get("MAKEFLAGS", "").partition(" -- ")
    passed = {word.split("=", 1)[0] for word in shlex.split(overrides) if "=" in word}
    return {k: v for k, v in env.items() if k not in MAKE_VARIABLES and k not in passed}


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
    """Lineage, serial and resource count of a state document; CommandError if it is not one."""
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CommandError(f"{source}: not valid JSON ({exc})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("lineage"), str) or "serial" not in doc:
        raise CommandError(f"{source}: not a Terraform state file (no lineage/serial)")
    if not isinstance(doc["serial"], int):
        raise CommandError(f"{source}: serial is not an integer")
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
    """``terraform`` (or ``$TERRAFORM_BINARY_NAME``) in one working directory, output collected."""

    def __init__(
        self,
        workdir: Path,
        env: Mapping[str, str] | None = None,
        binary: str | None = None,
        timeout: float = 900,
    ) -> None:
        self.workdir = workdir
        self.env = dict(env) if env is not None else None
        self.binary = binary or terraform_binary()
        self.timeout = timeout

    def run(self, *args: str, check: bool = True) -> Result:
        cmd = [self.binary, *args]
        try:
            result = execute(cmd, cwd=self.workdir, env=self.env, timeout=self.timeout)
        except FileNotFoundError:
            raise CommandError(f"{self.binary} not found on PATH (set TERRAFORM_BINARY_NAME)") from None
        except subprocess.TimeoutExpired:
            raise CommandError(f"`{' '.join(cmd)}` did not finish within {self.timeout:.0f} s") from None
        if check and not result.ok:
            raise CommandError(
                f"`{' '.join(cmd)}` failed in {self.workdir} (exit {result.returncode}):\n"
                + tail(result.stderr or result.stdout)
            )
        return result

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
        result = self.run(
            "untaint", "-no-color", "-allow-missing", "-lock-timeout=0s", _LOCK_PROBE_ADDRESS, check=False
        )
        if result.ok:
            return None
        holder = parse_lock_info(result.stderr + result.stdout)
        if holder is None:
            raise CommandError(f"cannot probe the state lock of {self.workdir}:\n{tail(result.stderr)}")
        return holder


def tail(text: str, lines: int = 25) -> str:
    """The last non-blank lines of a tool's output, indented, for an error message."""
    kept = [line for line in text.strip().splitlines() if line.strip()]
    return "\n".join("    " + line for line in kept[-lines:])
