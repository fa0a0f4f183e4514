"""Child processes of the harness: each in its own process group, stopped at the end, every wait
bounded in time. ``Unit`` plays systemd's part for one service of the boot script."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

STOP_GRACE_SECONDS = 10.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_until(what: str, check: Callable[[], bool], timeout: float, interval: float = 0.5) -> float:
    """Seconds until ``check()`` was true; TimeoutError after ``timeout`` seconds."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if check():
            return time.monotonic() - start
        time.sleep(interval)
    raise TimeoutError(f"{what}: not ready after {timeout:.0f} s")


def http_ok(url: str, timeout: float = 3.0) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return int(response.status) == 200
    except (OSError, urllib.error.URLError):
        return False


def start(
    argv: Sequence[str], log: Path, env: Mapping[str, str] | None = None, cwd: Path | None = None
) -> subprocess.Popen[bytes]:
    """A child in its own session (so its whole tree can be signalled), output appended to ``log``."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        return subprocess.Popen(
            list(argv),
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=dict(env) if env is not None else None,
            cwd=cwd,
            start_new_session=True,
        )


def stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the child's process group, SIGKILL after a grace period."""
    if proc.poll() is not None:
        return
    for sig, wait in ((signal.SIGTERM, STOP_GRACE_SECONDS), (signal.SIGKILL, STOP_GRACE_SECONDS)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def tree(pid: int) -> list[int]:
    """``pid`` and its descendants (from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        current = todo.pop()
        out.append(current)
        todo.extend(children.get(current, []))
    return out


# What each process of MLflow's tree is, by a word of its command line (first match wins);
# rehearsal/memory.py counts each role in a term of platform_config.sizing's estimate.
ROLES = (
    ("huey.bin.huey_consumer", "job-queue consumer"),
    ("mlflow.server.jobs._job_runner", "job runner"),
    ("multiprocessing.resource_tracker", "resource tracker"),
    ("multiprocessing.spawn", "server worker"),
    ("uvicorn", "server supervisor"),
    ("mlflow server", "mlflow server"),
)


@dataclass(frozen=True)
class Process:
    pid: int
    role: str
    rss_mib: float
    pss_mib: float


def role(argv: Sequence[str]) -> str:
    """The process's role in ``ROLES``, or its program name."""
    line = " ".join(argv)
    found = next((name for word, name in ROLES if word in line), None)
    return found or (Path(argv[0]).name if argv else "?")


def processes(pid: int) -> list[Process]:
    """Every live process of ``pid``'s tree with its role and memory (from /proc)."""
    out = []
    for p in tree(pid):
        try:
            argv = [
                a.decode(errors="replace") for a in Path(f"/proc/{p}/cmdline").read_bytes().split(b"\0") if a
            ]
            rollup = Path(f"/proc/{p}/smaps_rollup").read_text().splitlines()
        except OSError:
            continue  # exited meanwhile
        kib = {key: int(value.split()[0]) for key, _, value in (line.partition(":") for line in rollup[1:])}
        out.append(Process(p, role(argv), kib["Rss"] / 1024, kib["Pss"] / 1024))
    return out


def kinds(found: Sequence[Process]) -> dict[str, int]:
    """How many of ``found`` (one ``processes`` snapshot) have each role."""
    out: dict[str, int] = {}
    for p in found:
        out[p.role] = out.get(p.role, 0) + 1
    return out


def label(pid: int) -> str | None:
    """The role of one process (see ``ROLES``); None once it has gone."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return None
    return role([a.decode(errors="replace") for a in argv if a])


def socket_owners(ports: set[int]) -> dict[int, int]:
    """Local TCP port -> the process holding that socket (IPv4: /proc/net/tcp, then /proc/*/fd)."""
    inodes = {}
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        port = int(fields[1].rsplit(":", 1)[1], 16)
        if port in ports:
            inodes[f"socket:[{fields[9]}]"] = port
    owners = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            targets = [os.readlink(fd) for fd in (entry / "fd").iterdir()]
        except OSError:
            continue
        for target in targets:
            if target in inodes:
                owners[inodes[target]] = int(entry.name)
    return owners


def exposing(pid: int, secret: str) -> list[int]:
    """The processes of ``pid``'s tree whose environment or command line contains ``secret``."""
    needle = secret.encode()
    found = []
    for p in tree(pid):
        try:
            seen = Path(f"/proc/{p}/environ").read_bytes() + Path(f"/proc/{p}/cmdline").read_bytes()
        except OSError:
            continue
        if needle in seen:
            found.append(p)
    return found


@dataclass(frozen=True)
class Memory:
    processes: int
    rss_mib: float  # sum over the tree: counts shared pages once per process
    pss_mib: float  # proportional share: what the tree really costs


def memory(found: Sequence[Process]) -> Memory:
    """The totals of one ``processes`` snapshot."""
    return Memory(len(found), sum(p.rss_mib for p in found), sum(p.pss_mib for p in found))


@dataclass(frozen=True)
class ServiceSpec:
    """The parts of a systemd [Service] section the rehearsal honours."""

    name: str
    exec_start: list[str]
    restart_always: bool = False
    restart_sec: float = 0.0
    output: Path | None = None
    private_tmp: bool = False
    restart_prevent: tuple[int, ...] = ()  # RestartPreventExitStatus: these exits are final


def parse_unit(path: Path) -> ServiceSpec:
    keys: dict[str, str] = {}
    for line in path.read_text().splitlines():
        key, sep, value = line.partition("=")
        if sep and not line.startswith(("#", "[")):
            keys[key.strip()] = value.strip()
    output = keys.get("StandardOutput", "")
    return ServiceSpec(
        name=path.name,
        exec_start=keys["ExecStart"].split(),
        restart_always=keys.get("Restart") == "always",
        restart_sec=float(keys.get("RestartSec", "0")),
        output=Path(output.removeprefix("append:")) if output.startswith("append:") else None,
        private_tmp=keys.get("PrivateTmp") == "true",
        restart_prevent=tuple(int(code) for code in keys.get("RestartPreventExitStatus", "").split()),
    )


@dataclass
class Unit:
    """A supervised service: restarted like ``Restart=always`` would, a bounded number of times."""

    spec: ServiceSpec
    env: dict[str, str]
    default_log: Path
    max_restarts: int = 5
    proc: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    exits: list[int] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _stopping: bool = False
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._stopping = False
        self._launch()
        if self.spec.restart_always and self._thread is None:
            self._thread = threading.Thread(target=self._watch, daemon=True)
            self._thread.start()

    def _launch(self) -> None:
        with self._lock:
            self.started_at = time.monotonic()
            self.proc = start(self.spec.exec_start, self.spec.output or self.default_log, self.env)

    def _watch(self) -> None:
        while not self._stopping and len(self.exits) <= self.max_restarts:
            proc = self.proc
            if proc is None or proc.poll() is None:
                time.sleep(0.2)
                continue
            if self._stopping:
                break
            self.exits.append(proc.returncode)
            if proc.returncode in self.spec.restart_prevent:
                break  # as systemd: an exit status the unit names is not restarted
            time.sleep(self.spec.restart_sec)
            if not self._stopping and len(self.exits) <= self.max_restarts:
                self._launch()

    def stop(self) -> None:
        self._stopping = True
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self.proc is not None:
            stop(self.proc)

    @property
    def crashes(self) -> int:
        return len(self.exits)
