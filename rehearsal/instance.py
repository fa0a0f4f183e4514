"""One rehearsed EC2 instance: its own root directory and ports, the substituted boot script run
as cloud-init would, then the units it enabled run under the harness's supervisor."""

from __future__ import annotations

import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from rehearsal import procs, substitutions

BOOT_TIMEOUT = 600.0
HEALTH_TIMEOUT = 300.0


@dataclass
class Instance:
    name: str
    root: Path
    venv: Path
    ca_bundle: Path
    env: dict[str, str]
    mlflow_port: int = field(default_factory=procs.free_port)
    nginx_port: int = field(default_factory=procs.free_port)
    units: dict[str, procs.Unit] = field(default_factory=dict)
    healthy_after: float | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.nginx_port}"

    @property
    def server_log(self) -> Path:
        return self.root / "var/log/mlflow/server.log"

    @property
    def access_log(self) -> Path:
        return self.root / "var/log/nginx/access.log"

    def boot(self, script: str) -> float:
        """Run the boot script; seconds it took. CalledProcessError carries the log's tail."""
        ctx = substitutions.Context(self.root, self.venv, self.ca_bundle, self.mlflow_port, self.nginx_port)
        text = substitutions.apply(script, ctx)
        for d in substitutions.PACKAGE_DIRS:
            (self.root / d).mkdir(parents=True, exist_ok=True)
        path = self.root / "var/lib/cloud/user-data.sh"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        log = self.root / "var/log/cloud-init-output.log"
        start = time.monotonic()
        with log.open("ab") as out:
            done = subprocess.run(
                ["bash", str(path)],
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**self.env, "PIP_NO_INDEX": "1"},
                timeout=BOOT_TIMEOUT,
                check=False,
            )
        if done.returncode != 0:
            tail = "\n".join(log.read_text(errors="replace").splitlines()[-15:])
            raise RuntimeError(f"boot script exited {done.returncode}:\n{tail}")
        return time.monotonic() - start

    def enabled(self) -> list[str]:
        return (self.root / "run/enable-now").read_text().split()

    def prepare_units(self) -> None:
        """The enabled services: the boot script's own unit files, and nginx as its package runs it."""
        for name in self.enabled():
            if name == "nginx.service":
                spec = procs.ServiceSpec(
                    name, ["nginx", "-c", str(self.root / "etc/nginx/nginx.conf"), "-g", "daemon off;"]
                )
            else:
                spec = procs.parse_unit(self.root / "etc/systemd/system" / name)
            env = dict(self.env)
            if spec.private_tmp:
                env["TMPDIR"] = str(self.root / "tmp")
            self.units[name] = procs.Unit(spec, env, self.root / "var/log" / f"{name}.log")

    def start_units(self) -> None:
        for unit in self.units.values():
            unit.start()

    def wait_healthy(self, timeout: float = HEALTH_TIMEOUT) -> float:
        """Seconds from the MLflow unit's start to ``/health`` answering 200 through nginx."""
        unit = self.units["mlflow.service"]
        procs.wait_until(f"{self.name} /health", lambda: procs.http_ok(f"{self.url}/health"), timeout, 0.25)
        self.healthy_after = time.monotonic() - unit.started_at
        return self.healthy_after

    def processes(self) -> list[procs.Process]:
        """MLflow's process tree now, each process with its role and memory."""
        proc = self.units["mlflow.service"].proc
        if proc is None:
            raise RuntimeError("mlflow.service is not running")
        return procs.processes(proc.pid)

    def stop(self) -> None:
        for unit in self.units.values():
            unit.stop()
