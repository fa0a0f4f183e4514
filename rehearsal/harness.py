"""The boot rehearsal of one environment, as a list of named steps with pass/fail, time and
evidence. Steps that prove a fix name the defect it fixed (the boot script carries the fixes:
CORS origins, one schema initialisation, the Redis-backed job queue, pins and telemetry off)."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3

from rehearsal import browser, memory, procs, servers
from rehearsal.instance import Instance
from rehearsal.target import Target

ARTIFACT_MIB = 8
RACE_INSTANCES = 3
# Most telling first: the evidence quotes the first kind found.
RACE_ERRORS = (
    "already exists",
    "Duplicate column",
    "Duplicate key",
    "Error initializing backend store",
    "Traceback",
)
JOURNEY = Path(__file__).with_name("journey.py")


@dataclass
class Step:
    name: str
    ok: bool
    seconds: float
    evidence: str
    defect: str = ""


@dataclass
class Report:
    env: str
    steps: list[Step] = field(default_factory=list)
    figures: dict[str, str] = field(default_factory=dict)

    def step(self, name: str, fn: Callable[[], tuple[bool, str]], defect: str = "") -> bool:
        """Run one check; an exception is a failure whose message is the evidence."""
        start = time.monotonic()
        try:
            ok, evidence = fn()
        except Exception as exc:
            ok, evidence = False, f"{type(exc).__name__}: {exc}"
        self.steps.append(Step(f"{self.env}: {name}", ok, time.monotonic() - start, evidence, defect))
        print(
            f"[rehearsal] {'PASS' if ok else 'FAIL'} {self.env}: {name} ({evidence.splitlines()[0][:160] if evidence else ''})",
            flush=True,
        )
        return ok


@dataclass
class Rehearsal:
    target: Target
    work: Path
    venv: Path
    moto_binary: Path
    path_prefix: Path
    report: Report = field(init=False)
    tls: servers.Tls = field(init=False)
    db: servers.MariaDB = field(init=False)
    moto: servers.Moto = field(init=False)
    redis: servers.Redis | None = None
    trap: servers.EgressTrap = field(default_factory=servers.EgressTrap)
    instances: list[Instance] = field(default_factory=list)
    db_password: str = field(default_factory=lambda: secrets.token_urlsafe(18))
    db_secret_arn: str = ""
    bucket: str = ""
    journey: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.report = Report(self.target.env)
        self.tls = servers.make_tls(self.work / "tls")
        self.db = servers.MariaDB(self.work / "mariadb", self.tls)
        self.moto = servers.Moto(self.work / "moto", self.moto_binary)

    # --- set-up -----------------------------------------------------------------------------
    def base_env(self) -> dict[str, str]:
        keep = ("HOME", "LANG", "LC_ALL", "TERM", "USER", "LOGNAME")
        env = {k: v for k, v in os.environ.items() if k in keep}
        env.update(
            PATH=f"{self.path_prefix}:/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin",
            AWS_ENDPOINT_URL=self.moto.endpoint,
            AWS_ACCESS_KEY_ID="testing",
            AWS_SECRET_ACCESS_KEY="testing",
            AWS_DEFAULT_REGION=self.target.region,
            AWS_EC2_METADATA_DISABLED="true",
            # Anything bound elsewhere than 127.0.0.1 goes to the trap (and is reported).
            HTTP_PROXY=self.trap.url,
            HTTPS_PROXY=self.trap.url,
            http_proxy=self.trap.url,
            https_proxy=self.trap.url,
            NO_PROXY="127.0.0.1,localhost",
            no_proxy="127.0.0.1,localhost",
            # The instance trusts the rehearsal CA as an EC2 host trusts Amazon's (Redis TLS).
            SSL_CERT_FILE=str(self.tls.ca),
            PIP_DISABLE_PIP_VERSION_CHECK="1",
        )
        return env

    def client(self, service: str) -> Any:
        return boto3.client(
            service,
            endpoint_url=self.moto.endpoint,
            region_name=self.target.region,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )

    def start_servers(self) -> tuple[bool, str]:
        self.trap.start()
        self.db.start()
        self.moto.start()
        if self.target.cache_enabled:
            self.redis = servers.Redis(self.work / "redis", self.tls, secrets.token_urlsafe(24))
            self.redis.start()
        return True, (
            f"mariadb :{self.db.port} (TLS, require_secure_transport=ON), moto :{self.moto.port}"
            + (f", redis :{self.redis.port} (TLS, AUTH)" if self.redis else "")
        )

    def seed(self) -> tuple[bool, str]:
        """What the stack creates: the database and its RDS-managed secret, the artifact bucket,
        the Redis token secret, every SSM parameter."""
        t = self.target
        db_name = t.parameters_raw()["db_name"]
        self.db.create_database(db_name, t.db_username, self.db_password)
        sm = self.client("secretsmanager")
        self.db_secret_arn = sm.create_secret(
            Name=f"rds!db-rehearsal-{t.env}",
            SecretString=json.dumps({"username": t.db_username, "password": self.db_password}),
        )["ARN"]
        local = {
            "aws_db_instance.mlflow.address": "127.0.0.1",
            "aws_db_instance.mlflow.port": str(self.db.port),
            "aws_db_instance.mlflow.master_user_secret[0].secret_arn": self.db_secret_arn,
            "aws_lb.mlflow.dns_name": t.alb_dns_name(),
            "random_id.bucket_suffix.hex": "rehearsal",
        }
        overrides = {}
        if self.redis is not None:
            secret = t.resources("aws_secretsmanager_secret")["redis_auth_token"]
            arn = sm.create_secret(Name=secret["name"], SecretString=self.redis.token)["ARN"]
            local["aws_secretsmanager_secret.redis_auth_token.arn"] = arn
            local["aws_elasticache_replication_group.mlflow.primary_endpoint_address"] = "127.0.0.1"
            overrides["redis_port"] = str(self.redis.port)  # fixed 6379 in the stack
        self.bucket = t.resolve(t.resources("aws_s3_bucket")["mlflow_artifacts"]["bucket"], local)
        self.client("s3").create_bucket(Bucket=self.bucket)
        ssm = self.client("ssm")
        params = t.parameters(local, overrides)
        for name, value in params.items():
            ssm.put_parameter(Name=name, Value=value, Type="SecureString", Overwrite=True)
        return True, ", ".join(f"{n.rsplit('/', 1)[1]}={v}" for n, v in sorted(params.items()))

    def new_instance(self, name: str) -> Instance:
        inst = Instance(name, self.work / name, self.venv, self.tls.ca, self.base_env())
        self.instances.append(inst)
        return inst

    # --- steps --------------------------------------------------------------------------------
    def boot(self, inst: Instance) -> tuple[bool, str]:
        seconds = inst.boot(self.target.script)
        inst.prepare_units()
        inst.start_units()
        healthy = inst.wait_healthy()
        self.report.figures[f"{inst.name} boot script"] = f"{seconds:.1f} s"
        self.report.figures[f"{inst.name} start to healthy"] = f"{healthy:.1f} s"
        return (
            True,
            f"boot script {seconds:.1f} s; units {', '.join(inst.units)}; /health 200 after {healthy:.1f} s",
        )

    def user_journey(self, inst: Instance) -> tuple[bool, str]:
        done = subprocess.run(
            [
                str(self.venv / "bin/python"),
                str(JOURNEY),
                inst.url,
                f"rehearsal-{self.target.env}",
                str(ARTIFACT_MIB),
            ],
            capture_output=True,
            text=True,
            env={**self.base_env(), "MLFLOW_DISABLE_TELEMETRY": "true"},
            timeout=600,
            check=False,
        )
        if done.returncode != 0:
            return False, done.stderr.strip()[-1500:]
        self.journey = json.loads(done.stdout.strip().splitlines()[-1])
        j = self.journey
        ok = (
            j["params"] == {"alpha": "0.5", "layers": "3"}
            and j["metrics"].get("loss") == 0.2
            and j["artifact_bytes"] == ARTIFACT_MIB * 1024 * 1024
            and j["model_versions"] == ["1"]
            and j["prediction"] == [2, 4, 6]
        )
        return ok, json.dumps(j)

    def stored(self) -> tuple[bool, str]:
        """The journey's data where it lives: rows in MariaDB, objects in the bucket."""
        db_name = self.target.parameters_raw()["db_name"]
        counts = {}
        for table in ("experiments", "runs", "params", "metrics", "registered_models", "model_versions"):
            counts[table] = int(self.db.sql(f"SELECT COUNT(*) FROM {table}", db_name).strip())
        objects = self.client("s3").list_objects_v2(Bucket=self.bucket).get("Contents", [])
        big = [o for o in objects if o["Key"].endswith("data/weights.bin")]
        ok = counts["runs"] >= 1 and counts["params"] >= 2 and counts["model_versions"] >= 1 and bool(big)
        size = big[0]["Size"] if big else 0
        return ok, f"rows {counts}; {len(objects)} objects in s3://{self.bucket}, weights.bin {size} bytes"

    def http(self, inst: Instance, host: str, origin: str | None, post: bool) -> tuple[int, str]:
        path = "/api/2.0/mlflow/experiments/search"
        data = json.dumps({"max_results": 1}).encode() if post else None
        url = inst.url + path + ("" if post else "?max_results=1")
        req = urllib.request.Request(url, data=data, method="POST" if post else "GET")
        req.add_header("Host", host)
        req.add_header("Content-Type", "application/json")
        if origin:
            req.add_header("Origin", origin)
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                return int(resp.status), resp.read(200).decode(errors="replace")
        except urllib.error.HTTPError as err:
            return err.code, err.read(200).decode(errors="replace")

    def expect(
        self, inst: Instance, host: str, origin: str | None, post: bool, want: int
    ) -> tuple[bool, str]:
        status, body = self.http(inst, host, origin, post)
        what = f"{'POST' if post else 'GET'} Host: {host}" + (f", Origin: {origin}" if origin else "")
        return status == want, f"{what} -> {status} (want {want}) {body.strip()[:120]}"

    def browser_runs_page(self, inst: Instance) -> tuple[bool, str]:
        host = self.target.public_host()
        url = f"http://{host}/#/experiments/{self.journey['experiment_id']}/runs"
        before = len(inst.access_log.read_text().splitlines())
        dom = browser.dump_dom(inst.nginx_port, url)
        shot = self.work / f"runs-page-{self.target.env}.png"
        browser.screenshot(inst.nginx_port, url, shot)
        # Chromium's own background requests reach nginx too (refused there): count the page's.
        lines = [
            line for line in inst.access_log.read_text().splitlines()[before:] if f"http://{host}/" in line
        ]
        refused = [line for line in lines if '" 403 ' in line]
        shown = self.journey["run_name"] in dom
        self.report.figures[f"screenshot {self.target.env}"] = str(shot)
        evidence = (
            f"{url}: run {self.journey['run_name']!r} {'shown' if shown else 'NOT shown'}; "
            f"{len(lines)} browser requests, {len(refused)} refused with 403"
            + (f"; first: {refused[0]}" if refused else "")
            + (f"; server log: {self._log_line(inst, 'Blocked cross-origin')}" if refused else "")
        )
        return shown and not refused, evidence

    @staticmethod
    def _log_line(inst: Instance, needle: str) -> str:
        for line in inst.server_log.read_text(errors="replace").splitlines():
            if needle in line:
                return line.strip()[:200]
        return "(none)"

    def redis_used(self, before: int) -> tuple[bool, str]:
        assert self.redis is not None
        keys = self.redis.cli("--scan").split()
        after = self.redis.connections_received()
        # Our own INFO and SCAN connections are the only ones when MLflow never connects.
        used = after - before > 2
        return (
            used,
            f"connections received by Redis since MLflow started: {after - before - 2}; keys: {keys[:5]}",
        )

    def rotation(self, inst: Instance) -> tuple[bool, str]:
        new = secrets.token_urlsafe(18)
        self.db.sql(f"ALTER USER '{self.target.db_username}'@'%' IDENTIFIED BY '{new}'")
        version = self.client("secretsmanager").put_secret_value(
            SecretId=self.db_secret_arn,
            SecretString=json.dumps({"username": self.target.db_username, "password": new}),
        )["VersionId"]
        inst.run_oneshot("mlflow-secret-watch.service")  # what the timer starts
        restarted = inst.serve_restart_requests()
        if restarted != ["mlflow.service"]:
            return False, f"the watcher asked for no restart after the rotation (requests: {restarted})"
        inst.wait_healthy()
        seen = (inst.root / "run/mlflow/db-secret-version").read_text().strip()
        status, _ = self.http(inst, "127.0.0.1", None, post=False)
        ok = seen == version and status == 200
        return ok, f"secret version {version}, launcher read {seen}; healthy again; search -> {status}"

    def race(self) -> tuple[bool, str]:
        """Instances started together on an empty database (as a fresh ASG launches them)."""
        race_db = self.target.parameters_raw()["db_name"] + "_race"
        self.db.create_database(race_db, self.target.db_username, self.db_password_now())
        name = next(
            v["name"]
            for v in self.target.resources("aws_ssm_parameter").values()
            if v["name"].endswith("/db_name")
        )
        self.client("ssm").put_parameter(Name=name, Value=race_db, Type="SecureString", Overwrite=True)
        group = [self.new_instance(f"race-{i}") for i in range(RACE_INSTANCES)]
        for inst in group:
            inst.boot(self.target.script)
            inst.prepare_units()
        for inst in group:  # at once: the boot scripts ran, the services start together
            inst.start_units()
        results = []
        for inst in group:
            try:
                results.append(f"{inst.name}: healthy after {inst.wait_healthy():.1f} s")
            except TimeoutError as exc:
                results.append(f"{inst.name}: {exc}")
        bad = []
        for inst in group:
            unit = inst.units["mlflow.service"]
            log = inst.server_log.read_text(errors="replace").splitlines()
            errors = [line.strip()[:160] for e in RACE_ERRORS for line in log if e in line]
            self.report.figures[f"{inst.name} start to healthy"] = (
                f"{inst.healthy_after:.1f} s" if inst.healthy_after else "never"
            )
            self.report.figures[f"{inst.name} memory"] = str(self._memory(inst))
            if unit.crashes or errors or inst.healthy_after is None:
                bad.append(f"{inst.name}: {unit.crashes} crash(es) {unit.exits}; {errors[:2]}")
        return not bad, "; ".join(results + bad)

    def db_password_now(self) -> str:
        value = self.client("secretsmanager").get_secret_value(SecretId=self.db_secret_arn)["SecretString"]
        password: str = json.loads(value)["password"]
        return password

    def _memory(self, inst: Instance) -> str:
        m = inst.memory()
        proc = inst.units["mlflow.service"].proc
        kinds = procs.kinds(proc.pid) if proc is not None else {}
        return f"{m.processes} processes ({kinds}), RSS {m.rss_mib:.0f} MiB, PSS {m.pss_mib:.0f} MiB"

    def memory_headroom(self, inst: Instance) -> tuple[bool, str]:
        proc = inst.units["mlflow.service"].proc
        self.report.figures[f"{inst.name} memory"] = self._memory(inst)
        t = self.target
        ok, evidence = memory.headroom(
            procs.processes(proc.pid) if proc is not None else [], t.instance_type, t.workers, t.cache_enabled
        )
        print(evidence, flush=True)
        return ok, evidence

    def no_egress(self) -> tuple[bool, str]:
        return not self.trap.seen, (
            "no request left 127.0.0.1"
            if not self.trap.seen
            else f"{len(self.trap.seen)} attempts: {sorted(set(self.trap.seen))[:3]}"
        )

    # --- the whole rehearsal ------------------------------------------------------------------
    def run(self) -> Report:
        r, t = self.report, self.target
        try:
            if not r.step("servers on 127.0.0.1", self.start_servers) or not r.step(
                "stack's parameters and secrets in moto", self.seed
            ):
                return r
            main = self.new_instance("instance")
            redis_before = self.redis.connections_received() if self.redis else 0
            if not r.step("boot script, units started, healthy through nginx", lambda: self.boot(main)):
                return r
            if r.step(
                "MLflow client: experiment, params, metrics, 8 MiB artifact, model",
                lambda: self.user_journey(main),
            ):
                r.step("data stored: rows in MariaDB, objects in the bucket", self.stored)
            host = t.public_host()
            scheme = "https" if t.https else "http"
            r.step(
                f"allowed Host {host}",
                lambda: self.expect(main, host, None, False, 200),
                "2" if t.https else "",
            )
            r.step(
                "disallowed Host evil.example.com refused",
                lambda: self.expect(main, "evil.example.com", None, False, 403),
            )
            r.step(
                f"allowed Origin {scheme}://{host} (browser POST)",
                lambda: self.expect(main, host, f"{scheme}://{host}", True, 200),
                "1",
            )
            r.step(
                "disallowed Origin https://evil.example.com refused",
                lambda: self.expect(main, host, "https://evil.example.com", True, 403),
            )
            if self.journey:
                r.step(
                    "browser: runs page through the public host", lambda: self.browser_runs_page(main), "1"
                )
            if self.redis is not None:
                r.step("cache on: MLflow uses Redis (TLS + AUTH)", lambda: self.redis_used(redis_before), "4")
            r.step("memory at rest leaves headroom", lambda: self.memory_headroom(main), "5")
            r.step("password rotation: watcher restarts MLflow, healthy", lambda: self.rotation(main))
            main.stop()
            r.step(f"{RACE_INSTANCES} instances at once on an empty database", self.race, "3")
            r.step("no traffic beyond 127.0.0.1 (telemetry)", self.no_egress, "5")
        finally:
            self.stop()
        return r

    def stop(self) -> None:
        for inst in self.instances:
            inst.stop()
        for server in (self.redis, self.moto, self.db):
            if server is not None:
                server.stop()
        self.trap.stop()
