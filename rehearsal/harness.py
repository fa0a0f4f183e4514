"""The boot rehearsal of one environment, as a list of named steps with pass/fail, time and
evidence. Steps that prove a fix name the defect it fixed (the boot script carries the fixes:
CORS origins, one schema initialisation, the Redis-backed job queue, pins and telemetry off, and
MLflow's own database user with IAM authentication, created by the stack's Lambda handler)."""

from __future__ import annotations

import ast
import base64
import http.client
import json
import os
import re
import secrets
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pymysql

from constructs_lib.db_users_lambda import generated_secrets, handler
from rehearsal import browser, grants, iam_token, load, memory, procs, servers, substitutions
from rehearsal.instance import Instance
from rehearsal.target import Target

# The credentials of every AWS client of the rehearsal, the instances' included (moto accepts any):
# the token verifier checks signatures with them.
ACCESS_KEY = SECRET_KEY = "testing"
ARTIFACT_MIB = 8
ACCESS_DENIED = 1045
# A token signed for the connection that presents it is this young at login (a cached one ages).
FRESH_SECONDS = 5.0
# What the mlflow user tries and the server must refuse (MySQL error codes).
NOT_GRANTED = (
    ("CREATE USER 'intruder'@'%'", 1227),  # needs CREATE USER
    ("SELECT user FROM mysql.user", 1142),  # the accounts' table
    ("SELECT * FROM `{other}`.notes", 1142),  # another database
    ("CREATE DATABASE `{database}_extra`", 1044),
    ("GRANT SELECT ON `{database}`.* TO '{master}'@'%'", 1044),  # no GRANT OPTION
)
GRANT_LINE = re.compile(r"^GRANT (.+) ON `(.+)`\.\* TO ")
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
ROOT = Path(__file__).resolve().parent.parent


def _launch_setting(name: str) -> int:
    """A number launch.py sets at its top level (it cannot be imported: it runs on import)."""
    source = (ROOT / "constructs_lib" / "instance" / "launch.py").read_text()
    for node in ast.parse(source).body:
        if isinstance(node, ast.Assign) and [getattr(t, "id", None) for t in node.targets] == [name]:
            value = ast.literal_eval(node.value)
            if isinstance(value, int):
                return value
    raise LookupError(f"constructs_lib/instance/launch.py sets no number {name}")


# A changed password is still taken this long by the workers that did not handle the change
# (launch.py's auth_cache_ttl_seconds); a revoked grant still allows this long (GRANT_CACHE_SECONDS).
# Each wait adds the time probes take.
AUTH_CACHE_SECONDS = _launch_setting("AUTH_CACHE_SECONDS")
STALE_PASSWORD_WAIT = AUTH_CACHE_SECONDS + 30
GRANT_CACHE_SECONDS = _launch_setting("GRANT_CACHE_SECONDS")
STALE_GRANT_WAIT = GRANT_CACHE_SECONDS + 20
# Refusals in a row that show every worker (and instance) behind the load balancer refuses.
REFUSED_IN_ROW = 8
# Requests that leave every worker holding a user's grants before a change takes one away.
WARM_REQUESTS = 12
# What sign-in costs: this many clients for this long against each server (rehearsal/load.py), and
# the share of the throughput without sign-in that sign-in must keep (issue 21: at most 20 % less).
THROUGHPUT_CLIENTS = 8
THROUGHPUT_SECONDS = 15.0
THROUGHPUT_ROUNDS = 2
THROUGHPUT_TARGET = 0.8


def until_refused(probe: Callable[[], int]) -> tuple[float, list[int]]:
    """Probe until REFUSED_IN_ROW refusals in a row, for at most STALE_GRANT_WAIT: the time the
    first of those refusals came after the start, and every status seen."""
    statuses: list[int] = []
    start, first = time.monotonic(), 0.0
    while time.monotonic() - start < STALE_GRANT_WAIT:
        status = probe()
        if status == 403 and (not statuses or statuses[-1] != 403):
            first = time.monotonic() - start
        statuses.append(status)
        if statuses[-REFUSED_IN_ROW:] == [403] * REFUSED_IN_ROW:
            break
        time.sleep(0.1 if status == 403 else 0.5)
    return first, statuses


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
    lb: servers.LoadBalancer | None = None
    trap: servers.EgressTrap = field(default_factory=servers.EgressTrap)
    imds: servers.Imds = field(default_factory=servers.Imds)
    # The stack's generated secrets, by address (aws_secretsmanager_secret.<address>) -> ARN.
    secret_arns: dict[str, str] = field(default_factory=dict)
    # Users the rehearsal creates through `ops mlflow`, name -> password.
    passwords: dict[str, str] = field(default_factory=dict)
    instances: list[Instance] = field(default_factory=list)
    db_secret_arn: str = ""
    bucket: str = ""
    journey: dict[str, Any] = field(default_factory=dict)
    # The harness's own sessions as mlflow (probes), left out of the proof of what MLflow uses.
    probe_sessions: set[str] = field(default_factory=set)
    # Only what the throughput step needs (make bench THROUGHPUT=1): boot, load balancer, people.
    throughput_only: bool = False

    def __post_init__(self) -> None:
        self.report = Report(self.target.env)
        self.tls = servers.make_tls(self.work / "tls")
        verifier = servers.TokenVerifier(self.work / "verifier", self.target.region, {ACCESS_KEY: SECRET_KEY})
        self.db = servers.MariaDB(
            self.work / "mariadb", self.tls, verifier, self.target.db_parameters, self.target.binary_log
        )
        self.moto = servers.Moto(self.work / "moto", self.moto_binary)

    @property
    def db_user(self) -> str:
        return self.target.parameters_raw()["db_user"]

    @property
    def db_name(self) -> str:
        return self.target.parameters_raw()["db_name"]

    @property
    def auth_db_name(self) -> str:
        return self.target.parameters_raw()["db_auth_name"]

    # --- set-up -----------------------------------------------------------------------------
    def base_env(self) -> dict[str, str]:
        keep = ("HOME", "LANG", "LC_ALL", "TERM", "USER", "LOGNAME")
        env = {k: v for k, v in os.environ.items() if k in keep}
        env.update(
            PATH=f"{self.path_prefix}:/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin",
            AWS_ENDPOINT_URL=self.moto.endpoint,
            AWS_ACCESS_KEY_ID=ACCESS_KEY,
            AWS_SECRET_ACCESS_KEY=SECRET_KEY,
            AWS_DEFAULT_REGION=self.target.region,
            AWS_EC2_METADATA_DISABLED="true",  # boto3's credentials come from the variables above
            # The launcher asks it for the instance's id (a failed start is reported unhealthy).
            AWS_EC2_METADATA_SERVICE_ENDPOINT=self.imds.endpoint,
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
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
        )

    def start_servers(self) -> tuple[bool, str]:
        self.trap.start()
        self.imds.start()
        self.db.start()
        self.moto.start()
        if self.target.cache_enabled:
            # A new replication group: TLS, no token yet (the provisioning function sets it).
            self.redis = servers.Redis(self.work / "redis", self.tls)
            self.redis.start()
        settings = self.db.settings(
            "require_secure_transport",
            "log_bin",
            "log_bin_trust_function_creators",
            "pam_use_cleartext_plugin",
        )
        return True, (
            f"mariadb :{self.db.port} (TLS; {', '.join(f'{k}={v}' for k, v in settings.items())}; "
            f"PAM service {self.db.verifier.service}), moto :{self.moto.port}"
            + (f", redis :{self.redis.port} (TLS, no AUTH token yet)" if self.redis else "")
            + f", instance metadata :{self.imds.port}"
        )

    def seed(self) -> tuple[bool, str]:
        """What the stack creates: the database, its master user and RDS-managed secret, the
        artifact bucket, the generated secrets (empty: the provisioning function fills them), every
        SSM parameter, and the auto scaling group the instances report to."""
        t = self.target
        password = secrets.token_urlsafe(18)
        self.db.create_master(t.db_username, password)
        self.db.create_database(self.db_name)
        sm = self.client("secretsmanager")
        self.db_secret_arn = sm.create_secret(
            Name=f"rds!db-rehearsal-{t.env}",
            SecretString=json.dumps({"username": t.db_username, "password": password}),
        )["ARN"]
        local = {
            "aws_db_instance.mlflow.address": "127.0.0.1",
            "aws_db_instance.mlflow.port": str(self.db.port),
            "aws_lb.mlflow.dns_name": t.alb_dns_name(),
            "random_id.bucket_suffix.hex": "rehearsal",
        }
        for address in t.resources("aws_secretsmanager_secret"):
            arn = sm.create_secret(Name=t.secret_name(address))["ARN"]  # no value: as Terraform leaves it
            self.secret_arns[address] = local[f"aws_secretsmanager_secret.{address}.arn"] = arn
        overrides = {}
        if self.redis is not None:
            local["aws_elasticache_replication_group.mlflow.primary_endpoint_address"] = "127.0.0.1"
            overrides["redis_port"] = str(self.redis.port)  # fixed 6379 in the stack
        self.bucket = t.resolve(t.resources("aws_s3_bucket")["mlflow_artifacts"]["bucket"], local)
        self.client("s3").create_bucket(Bucket=self.bucket)
        ssm = self.client("ssm")
        params = t.parameters(local, overrides)
        for name, value in params.items():
            assert t.resources("aws_ssm_parameter")[name.rsplit("/", 1)[1]]["type"] == "String"
            ssm.put_parameter(Name=name, Value=value, Type="String", Overwrite=True)
        self.imds.instance_id = self.autoscaling_group()
        return True, ", ".join(f"{n.rsplit('/', 1)[1]}={v}" for n, v in sorted(params.items())) + (
            f"; empty secrets {sorted(self.secret_arns)}; instance {self.imds.instance_id}"
        )

    def autoscaling_group(self) -> str:
        """The stack's group in moto, with one instance: the id the metadata service gives out."""
        group = self.target.resources("aws_autoscaling_group")["mlflow"]["name"]
        ec2 = self.client("ec2")
        image = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
        ec2.create_launch_template(
            LaunchTemplateName=group, LaunchTemplateData={"ImageId": image, "InstanceType": "t3.medium"}
        )
        zone = f"{self.target.region}a"
        asg = self.client("autoscaling")
        asg.create_auto_scaling_group(
            AutoScalingGroupName=group,
            LaunchTemplate={"LaunchTemplateName": group},
            MinSize=1,
            MaxSize=1,
            DesiredCapacity=1,
            AvailabilityZones=[zone],
        )
        [instance] = asg.describe_auto_scaling_groups(AutoScalingGroupNames=[group])["AutoScalingGroups"][0][
            "Instances"
        ]
        return str(instance["InstanceId"])

    def instance_health(self) -> str:
        [found] = self.client("autoscaling").describe_auto_scaling_instances(
            InstanceIds=[self.imds.instance_id]
        )["AutoScalingInstances"]
        return str(found["HealthStatus"])

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

    def user_journey(self, inst: Instance, user: str = "alice") -> tuple[bool, str]:
        """What a data scientist does, signed in as ``user`` (MLflow's client reads the variables)."""
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
            env={**self.base_env(), "MLFLOW_DISABLE_TELEMETRY": "true", **self.credentials(user)},
            timeout=600,
            check=False,
        )
        if done.returncode != 0:
            return False, done.stderr.strip()[-1500:]
        self.journey = json.loads(done.stdout.strip().splitlines()[-1])
        j = self.journey
        ok = (
            j["params"] == {"alpha": "0.5", "layers": "3"}
            and j["tags"] == []  # the one set was deleted
            and j["metrics"].get("loss") == 0.2
            and j["artifact_bytes"] == ARTIFACT_MIB * 1024 * 1024
            and j["model_versions"] == ["1"]
            and j["prediction"] == [2, 4, 6]
        )
        return ok, json.dumps(j)

    def stored(self) -> tuple[bool, str]:
        """The journey's data where it lives: rows in MariaDB, objects in the bucket."""
        counts = {}
        for table in ("experiments", "runs", "params", "metrics", "registered_models", "model_versions"):
            counts[table] = int(self.db.sql(f"SELECT COUNT(*) FROM {table}", self.db_name).strip())
        objects = self.client("s3").list_objects_v2(Bucket=self.bucket).get("Contents", [])
        big = [o for o in objects if o["Key"].endswith("data/weights.bin")]
        ok = counts["runs"] >= 1 and counts["params"] >= 2 and counts["model_versions"] >= 1 and bool(big)
        size = big[0]["Size"] if big else 0
        return ok, f"rows {counts}; {len(objects)} objects in s3://{self.bucket}, weights.bin {size} bytes"

    def provision(self, *databases: str) -> dict[str, Any]:
        """The stack's provisioning Lambda handler (constructs_lib/db_users_lambda), given the event
        its aws_lambda_invocation sends (with the local server's address) and the rehearsal's two
        substitutions: MariaDB's authentication clause, ElastiCache's API over the local Redis."""
        t = self.target
        generated = [a for n, a in self.secret_arns.items() if n != "redis_auth_token"]
        redis = (
            {"replication_group_id": t.resources("aws_elasticache_replication_group")["mlflow"]["replication_group_id"],
             "secret_arn": self.secret_arns["redis_auth_token"]}
            if self.redis is not None else None
        )  # fmt: skip
        request = handler.Request.of(
            {"secret_arn": self.db_secret_arn, "host": "127.0.0.1", "port": self.db.port,
             "databases": list(databases or (self.db_name, self.auth_db_name)), "user": self.db_user,
             "region": t.region, "secrets": generated, "redis": redis}
        )  # fmt: skip
        sm = self.client("secretsmanager")
        master = handler.master_credentials(sm, request.secret_arn)
        auth = substitutions.db_user_authentication(self.db.verifier.service)
        result = handler.provision(request, master, self.tls.ca, auth)
        elasticache = (
            substitutions.ElastiCacheOverRedis(self.redis, redis["replication_group_id"]) if redis else None
        )
        group = (redis["replication_group_id"], redis["secret_arn"]) if redis else None
        return {**result, "secrets": generated_secrets.provision(request.secrets, group, sm, elasticache)}

    def secret_value(self, address: str) -> str:
        value: str = self.client("secretsmanager").get_secret_value(
            SecretId=self.secret_arns[address], VersionStage="AWSCURRENT"
        )["SecretString"]
        return value

    def db_user_created(self, runs: int = 2) -> tuple[bool, str]:
        results = [self.provision() for _ in range(runs)]
        last = results[-1]
        granted = {db: _database_privileges(last["grants"], db) for db in (self.db_name, self.auth_db_name)}
        accounts = int(self.db.sql(f"SELECT COUNT(*) FROM mysql.user WHERE user = '{self.db_user}'"))
        iam_only = any(
            f"VIA pam USING '{self.db.verifier.service}'" in g and "REQUIRE SSL" in g for g in last["grants"]
        )
        values = [self.db_password_now(), *(self.secret_value(a) for a in self.secret_arns)]
        leaked = [v for v in values if v in json.dumps(results)]
        first_outcomes, outcomes = set(results[0]["secrets"].values()), set(last["secrets"].values())
        token_set = self.redis is None or (
            self.redis.token == self.secret_value("redis_auth_token") and self._redis_refuses_without_token()
        )
        ok = (
            all(g == set(handler.PRIVILEGES) for g in granted.values())
            and accounts == 1 and iam_only and not leaked and token_set
            and first_outcomes <= {"generated", "set"} and outcomes == {"kept"}
        )  # fmt: skip
        return ok, (
            f"{runs} runs; databases {sorted(granted)} granted {sorted(handler.PRIVILEGES) == sorted(next(iter(granted.values())))}; "
            f"{accounts} account; secrets first {results[0]['secrets']}, then {last['secrets']}"
            + (f"; Redis takes the secret's token only: {token_set}" if self.redis else "")
            + ("; THE RESULT HOLDS A SECRET" if leaked else "")
        )

    def _redis_refuses_without_token(self) -> bool:
        assert self.redis is not None
        try:
            answer = self.redis.cli("PING", token="")
        except subprocess.CalledProcessError as exc:
            answer = exc.stdout or exc.stderr or ""
        return "NOAUTH" in answer

    def iam_login(self, inst: Instance) -> tuple[bool, str]:
        """MLflow's sessions are mlflow's, held by MLflow's own processes (server workers, job
        consumers), each opened with a token signed for it (its age at login is about zero: nothing
        caches one); no MLflow process holds the master password."""
        proc = inst.units["mlflow.service"].proc
        assert proc is not None
        family = set(procs.tree(proc.pid))
        sessions = self.db.sessions()
        ports = self.db.session_ports(self.db_user)
        owners = procs.socket_owners(set(ports))
        held_by = Counter(procs.label(pid) or "?" for pid in owners.values() if pid in family)
        strangers = sorted(pid for pid in owners.values() if pid not in family)
        logins = [d for d in self.db.verifier.decisions() if d["accepted"] and d["user"] == self.db_user]
        oldest = max((d["age_seconds"] for d in logins), default=float("inf"))
        holders = procs.exposing(proc.pid, self.db_password_now())
        ok = bool(ports) and len(owners) == len(ports) and not strangers
        ok = ok and self.target.db_username not in sessions and oldest < FRESH_SECONDS and not holders
        return ok, (
            f"open sessions {sessions}; {self.db_user}'s held by {dict(held_by)}"
            + (f", and by processes outside MLflow: {strangers}" if strangers else "")
            + f"; {len(logins)} logins as {self.db_user}, each token signed at most {oldest:.1f} s before; "
            f"processes holding the master password: {holders or 'none'}"
        )

    def connect(self, user: str, password: str) -> pymysql.connections.Connection:
        """A session as the instances open one (TLS, the password or token in clear text)."""
        conn = pymysql.connect(
            host="127.0.0.1", port=self.db.port, user=user, password=password,
            ssl={"ca": str(self.tls.ca)}, connect_timeout=10,
        )  # fmt: skip
        self.probe_sessions.add(str(conn.thread_id()))
        return conn

    def fresh_token(self, user: str, port: int | None = None) -> str:
        token: str = self.client("rds").generate_db_auth_token(
            DBHostname="127.0.0.1", Port=port or self.db.port, DBUsername=user, Region=self.target.region
        )
        return token

    def not_granted(self) -> tuple[bool, str]:
        other = f"other_{self.target.env}"
        self.db.sql(
            f"CREATE DATABASE IF NOT EXISTS `{other}`; CREATE TABLE IF NOT EXISTS `{other}`.notes (id INT)"
        )
        names = {"other": other, "database": self.db_name, "master": self.target.db_username}
        results = []
        conn = self.connect(self.db_user, self.fresh_token(self.db_user))
        try:
            with conn.cursor() as cursor:
                for template, want in NOT_GRANTED:
                    statement = template.format(**names)
                    try:
                        cursor.execute(statement)
                        got = 0
                    except pymysql.err.MySQLError as exc:
                        got = int(exc.args[0])
                    results.append((statement, got, want))
        finally:
            conn.close()
        return all(got == want for _, got, want in results), "; ".join(
            f"{statement} -> {got or 'ALLOWED'} (want {want})" for statement, got, want in results
        )

    def bad_tokens(self) -> tuple[bool, str]:
        endpoint = iam_token.Endpoint("127.0.0.1", self.db.port, self.target.region)
        now = datetime.now(UTC)
        user = self.db_user
        cases = {
            "expired (signed 16 min ago)": iam_token.sign(endpoint, user, ACCESS_KEY, SECRET_KEY, now - timedelta(minutes=16)),
            "signed with another secret key": iam_token.sign(endpoint, user, ACCESS_KEY, "not-the-key", now),
            "the master user's token": self.fresh_token(self.target.db_username),
            "for another database server": self.fresh_token(user, self.db.port + 1),
            "the master password": self.db_password_now(),
        }  # fmt: skip
        before = len(self.db.verifier.decisions())
        outcomes = {}
        for name, password in cases.items():
            try:
                self.connect(user, password).close()
                outcomes[name] = 0
            except pymysql.err.OperationalError as exc:
                outcomes[name] = int(exc.args[0])
        reasons = [d["reason"] for d in self.db.verifier.decisions()[before:]]
        self.connect(user, self.fresh_token(user)).close()  # the control: a good token still works
        refused = all(code == ACCESS_DENIED for code in outcomes.values())
        return refused and len(reasons) == len(cases), "; ".join(
            f"{name} -> {code or 'ACCEPTED'}" for name, code in outcomes.items()
        ) + f"; verifier: {reasons}; a fresh token right after: accepted"

    def credentials(self, user: str) -> dict[str, str]:
        """MLflow's client variables for ``user`` (the admin's password from its secret)."""
        admin = self.target.auth["admin_username"]
        password = self.secret_value("mlflow_admin_password") if user == admin else self.passwords[user]
        return {"MLFLOW_TRACKING_USERNAME": user, "MLFLOW_TRACKING_PASSWORD": password}

    def request(
        self,
        inst: Instance,
        path: str,
        *,
        user: str | None = "alice",
        password: str | None = None,
        body: dict[str, Any] | None = None,
        host: str = "127.0.0.1",
        origin: str | None = None,
    ) -> tuple[int, str, dict[str, str]]:
        """One request through the instance's nginx, signed in as ``user`` (None: no credentials);
        the response's header names in lower case."""
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(inst.url + path, data=data, method="POST" if data is not None else "GET")
        req.add_header("Host", host)
        req.add_header("Content-Type", "application/json")
        if origin:
            req.add_header("Origin", origin)
        if user is not None:
            secret = password if password is not None else self.credentials(user)["MLFLOW_TRACKING_PASSWORD"]
            req.add_header("Authorization", "Basic " + base64.b64encode(f"{user}:{secret}".encode()).decode())
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                return (
                    int(resp.status),
                    resp.read(300).decode(errors="replace"),
                    {k.lower(): v for k, v in resp.headers.items()},
                )
        except urllib.error.HTTPError as err:
            return (
                err.code,
                err.read(300).decode(errors="replace"),
                {k.lower(): v for k, v in err.headers.items()},
            )

    def http(self, inst: Instance, host: str, origin: str | None, post: bool) -> tuple[int, str]:
        path = "/api/2.0/mlflow/experiments/search"
        body = {"max_results": 1} if post else None
        status, text, _ = self.request(
            inst, path + ("" if post else "?max_results=1"), body=body, host=host, origin=origin
        )
        return status, text

    def expect(
        self, inst: Instance, host: str, origin: str | None, post: bool, want: int
    ) -> tuple[bool, str]:
        status, body = self.http(inst, host, origin, post)
        what = f"{'POST' if post else 'GET'} Host: {host}" + (f", Origin: {origin}" if origin else "")
        return status == want, f"{what} -> {status} (want {want}) {body.strip()[:120]}"

    def start_load_balancer(self, inst: Instance) -> tuple[bool, str]:
        hosts = self.target.extra_allowed_hosts
        self.lb = servers.LoadBalancer(self.work / "load-balancer", self.tls, hosts)
        self.lb.start([inst.nginx_port])
        status, _, headers = self.lb_request("/", user=None, scheme="http")
        redirect = headers.get("location", "")
        ok = status == 301 and redirect == f"https://{hosts[0]}/"
        return ok, (
            f"https :{self.lb.https_port} with a certificate for {hosts} (rehearsal CA) -> instance nginx "
            f":{inst.nginx_port}; http :{self.lb.http_port} GET / -> {status} Location: {redirect}"
        )

    def lb_request(
        self, path: str, *, user: str | None = "alice", password: str | None = None, scheme: str = "https"
    ) -> tuple[int, str, dict[str, str]]:
        """A request to the custom host through the load balancer (the name resolved here)."""
        assert self.lb is not None
        host = self.target.public_host()
        headers = {"Host": host}
        if user is not None:
            secret = password if password is not None else self.credentials(user)["MLFLOW_TRACKING_PASSWORD"]
            headers["Authorization"] = "Basic " + base64.b64encode(f"{user}:{secret}".encode()).decode()
        conn: http.client.HTTPConnection
        if scheme == "https":
            conn = _CustomHostHTTPS(
                host, self.lb.https_port, ssl.create_default_context(cafile=str(self.tls.ca))
            )
        else:
            conn = http.client.HTTPConnection("127.0.0.1", self.lb.http_port, timeout=30)
        try:
            conn.request("GET", path, headers=headers)
            resp = conn.getresponse()
            return (
                resp.status,
                resp.read(300).decode(errors="replace"),
                {k.lower(): v for k, v in resp.headers.items()},
            )
        finally:
            conn.close()

    def signin_required(self, inst: Instance) -> tuple[bool, str]:
        """Without credentials (or with a wrong password) nothing but /health and /static answers:
        the API, the UI and /version get 401 with a Basic challenge; a browser without credentials
        sees no run."""
        admin = self.target.auth["admin_username"]
        cases = {
            "API, no credentials": (inst, "/api/2.0/mlflow/experiments/search?max_results=1", None, None, 401),
            "UI, no credentials": (None, "/", None, None, 401),
            "/version, no credentials": (None, "/version", None, None, 401),
            "API, wrong password": (inst, "/api/2.0/mlflow/experiments/search?max_results=1", admin, "not-the-password-0", 401),
            "/version, the admin": (None, "/version", admin, None, 200),
            "/health, no credentials": (None, "/health", None, None, 200),
        }  # fmt: skip
        results = []
        challenged = True
        for name, (via, path, user, password, want) in cases.items():
            if via is None:
                status, _, headers = self.lb_request(path, user=user, password=password)
            else:
                status, _, headers = self.request(via, path, user=user, password=password)
            if want == 401:
                challenged = challenged and headers.get("www-authenticate", "").startswith("Basic")
            results.append((name, status, want))
        host = self.target.public_host()
        visit = browser.visit(
            host,
            self._lb_port(),
            f"https://{host}/#/experiments",
            credentials=None,
            wait_for="never",
            timeout=15,
        )
        refused = [url for status, url in visit.statuses if status == 401]
        ok = (
            all(got == want for _, got, want in results)
            and challenged
            and bool(refused)
            and visit.challenges > 0
        )
        return ok, "; ".join(f"{n} -> {got} (want {want})" for n, got, want in results) + (
            f"; Basic challenge: {challenged}; Chromium without credentials: {visit.challenges} sign-in "
            f"prompt(s) cancelled, {len(refused)} responses 401 ({refused[:2]})"
        )

    def _lb_port(self) -> int:
        assert self.lb is not None
        return self.lb.https_port

    def _lb_log(self) -> list[str]:
        assert self.lb is not None
        log = self.lb.directory / "access.log"
        return log.read_text(errors="replace").splitlines() if log.exists() else []

    def ops_mlflow(self, inst: Instance, *args: str) -> subprocess.CompletedProcess[str]:
        """The ops command line ``mlflow ARGS --env ENV --url <instance>``, as an operator runs it (its AWS
        calls go to moto, its MLflow calls through the instance's nginx)."""
        return subprocess.run(
            [sys.executable, "-m", "ops", "--root", str(ROOT), "mlflow", *args,
             "--env", self.target.env, "--url", inst.url],
            capture_output=True, text=True, timeout=600, check=False,
            env={**self.base_env(), "PATH": os.environ["PATH"], "NO_PROXY": "127.0.0.1,localhost"},
        )  # fmt: skip

    def people(self, inst: Instance) -> tuple[bool, str]:
        """Users created with ``ops mlflow user create``: two people (their first password printed
        once) and an automation account (its password only in its own secret); each signs in."""
        lines = []
        for name in ("alice", "bob"):
            done = self.ops_mlflow(inst, "user", "create", name)
            if done.returncode != 0:
                return False, f"user create {name}: exit {done.returncode}: {done.stderr.strip()[-400:]}"
            self.passwords[name] = done.stdout.strip().rsplit(": ", 1)[1]
            lines.append(done.stdout.strip().rsplit(": ", 1)[0] + ": ***")
        done = self.ops_mlflow(inst, "user", "create", "ci-bot", "--service-account")
        if done.returncode != 0:
            return False, f"user create ci-bot: exit {done.returncode}: {done.stderr.strip()[-400:]}"
        secret = self.target_user_secret("ci-bot")
        self.passwords["ci-bot"] = self.client("secretsmanager").get_secret_value(SecretId=secret)[
            "SecretString"
        ]
        printed = self.passwords["ci-bot"] in done.stdout + done.stderr
        lines.append(done.stdout.strip())
        again = self.ops_mlflow(inst, "user", "create", "bob")
        statuses = {
            name: self.request(inst, "/api/2.0/mlflow/experiments/search?max_results=1", user=name)[0]
            for name in ("alice", "bob", "ci-bot")
        }
        ok = all(s == 200 for s in statuses.values()) and not printed and again.returncode != 0
        return ok, (
            "; ".join(lines) + f"; sign-in: {statuses}; the account's password printed: {printed}; "
            f"creating bob again: exit {again.returncode}: {again.stderr.strip()[-160:]}"
        )

    def target_user_secret(self, user: str) -> str:
        """The automation account's secret (ops mlflow: ``<prefix>-user-<name>``)."""
        admin_secret = self.target.secret_name("mlflow_admin_password")
        return admin_secret.rsplit("-admin-password", 1)[0] + f"-user-{user}"

    def permissions(self, inst: Instance) -> tuple[bool, str]:
        """bob and alice's experiment and model, through ``ops mlflow grant|revoke``: refused until
        granted READ (where default_permission lets everyone read, refused once given DENY), READ
        reads and cannot write, EDIT writes, revoke returns to default_permission. A grant allows at
        once on every worker; what a change takes away is refused by every worker within
        GRANT_CACHE_SECONDS (mlflow_signin's gate), measured."""
        j, default = self.journey, self.target.auth["default_permission"]
        exp, run, model = j["experiment_id"], j["run_id"], j["model_name"]
        reads_by_default = default != "NO_PERMISSIONS"

        def read() -> int:
            return self.request(inst, f"/api/2.0/mlflow/experiments/get?experiment_id={exp}", user="bob")[0]

        def read_model() -> int:
            path = f"/api/2.0/mlflow/registered-models/get?name={urllib.parse.quote(model)}"
            return self.request(inst, path, user="bob")[0]

        def set_tag() -> int:
            body = {"run_id": run, "key": "reviewed-by", "value": "bob"}
            return self.request(inst, "/api/2.0/mlflow/runs/set-tag", user="bob", body=body)[0]

        def delete_run() -> int:
            return self.request(inst, "/api/2.0/mlflow/runs/delete", user="bob", body={"run_id": run})[0]

        log: list[str] = []
        failures: list[str] = []
        waits: list[float] = []

        def check(what: str, got: int, want: int) -> None:
            log.append(f"{what} {got}")
            if got != want:
                failures.append(f"{what}: {got}, want {want}")

        def refused(what: str, probe: Callable[[], int]) -> None:
            """Taken away: refused REFUSED_IN_ROW times in a row within STALE_GRANT_WAIT."""
            waited, statuses = until_refused(probe)
            waits.append(waited)
            log.append(f"{what} 403 x{REFUSED_IN_ROW} after {waited:.1f} s")
            if statuses[-REFUSED_IN_ROW:] != [403] * REFUSED_IN_ROW or waited > GRANT_CACHE_SECONDS + 5:
                failures.append(
                    f"{what}: {dict(Counter(statuses))} in {waited:.1f} s, want 403 by every worker"
                )

        def ops(*args: str) -> None:
            done = self.ops_mlflow(inst, *args)
            log.append(f"[{' '.join(args)}: exit {done.returncode}]")
            if done.returncode != 0:
                failures.append(f"{' '.join(args)}: {done.stderr.strip()[-200:]}")

        def warm(*probes: Callable[[], int]) -> None:
            """Before a change takes something away: every worker holds bob's grants as they were."""
            statuses = [probe() for _ in range(WARM_REQUESTS) for probe in probes]
            log.append(f"(warmed: {dict(Counter(statuses))})")

        if reads_by_default:
            check(f"read ({default} by default)", read(), 200)
            check(f"read model ({default} by default)", read_model(), 200)
            warm(read, read_model)
            ops("grant", "--user", "bob", "--experiment", exp, "--permission", "DENY")
            ops("grant", "--user", "bob", "--model", model, "--permission", "DENY")
            refused("read with DENY", read)
            refused("read model with DENY", read_model)
        else:
            check("read", read(), 403)
            check("read model", read_model(), 403)
        ops("grant", "--user", "bob", "--experiment", j["experiment_name"], "--permission", "READ")
        ops("grant", "--user", "bob", "--model", model, "--permission", "READ")
        check("read with READ", read(), 200)
        check("read model with READ", read_model(), 200)
        check("set-tag with READ", set_tag(), 403)
        check("delete with READ", delete_run(), 403)
        ops("grant", "--user", "bob", "--experiment", exp, "--permission", "EDIT")
        check("set-tag with EDIT", set_tag(), 200)
        warm(set_tag, read)
        ops("revoke", "--user", "bob", "--experiment", exp)
        refused(f"set-tag after revoke ({default})", set_tag)
        if reads_by_default:
            check(f"read after revoke ({default})", read(), 200)
        else:
            refused(f"read after revoke ({default})", read)
        # The same through MLflow's API as the administrator, which takes milliseconds where an ops
        # command takes seconds: what every worker held is then still within the grant cache.
        admin = self.target.auth["admin_username"]

        def api(action: str, permission: str | None = None) -> None:
            body = {"username": "bob", "resource_type": "experiment", "resource_id": exp}
            body.update({"permission": permission} if permission else {})
            path = f"/api/3.0/mlflow/users/permissions/{action}"
            status = self.request(inst, path, user=admin, body=body)[0]
            log.append(f"[API {action} {permission or ''}: {status}]")
            if status != 200:
                failures.append(f"API {action}: {status}")

        ops_waits = list(waits)
        if reads_by_default:
            warm(read)
            api("grant", "DENY")
            refused("read, DENY through the API", read)
            api("revoke")
            check("read once the DENY is revoked through the API (at once)", read(), 200)
        else:
            api("grant", "READ")
            check("read once granted through the API (at once)", read(), 200)
            warm(read)
            api("revoke")
            refused("read, revoked through the API", read)
        self.report.figures[f"taken away, refused by every worker (grant cache {GRANT_CACHE_SECONDS} s)"] = (
            f"{waits[-1]:.1f} s after the API call; {max(ops_waits):.1f} s at most after an ops command "
            f"({len(ops_waits)}; each takes seconds to start)"
        )
        return not failures, "; ".join(log) + (f"; FAILED: {failures}" if failures else "")

    def admin_rotation(self, inst: Instance) -> tuple[bool, str]:
        """``ops mlflow admin rotate``: the new password works at once; the old one is refused by
        every worker once its sign-in cache expires; no MLflow process holds either."""
        admin = self.target.auth["admin_username"]
        old = self.secret_value("mlflow_admin_password")
        done = self.ops_mlflow(inst, "admin", "rotate")
        if done.returncode != 0:
            return False, f"exit {done.returncode}: {done.stderr.strip()[-400:]}"
        new = self.secret_value("mlflow_admin_password")
        path = "/api/2.0/mlflow/experiments/search?max_results=1"
        new_status = self.request(inst, path, user=admin, password=new)[0]
        start, refused_in_row, tries = time.monotonic(), 0, 0
        while refused_in_row < REFUSED_IN_ROW and time.monotonic() - start < STALE_PASSWORD_WAIT:
            tries += 1
            refused_in_row = (
                refused_in_row + 1 if self.request(inst, path, user=admin, password=old)[0] == 401 else 0
            )
            time.sleep(0.5 if refused_in_row else 1.0)
        waited = time.monotonic() - start
        proc = inst.units["mlflow.service"].proc
        assert proc is not None
        holders = procs.exposing(proc.pid, old) + procs.exposing(proc.pid, new)
        ok = new != old and new_status == 200 and refused_in_row >= REFUSED_IN_ROW and not holders
        return ok, (
            f"{done.stdout.strip()}; new password -> {new_status}; old password refused by every worker "
            f"after {waited:.0f} s ({tries} probes; cache {AUTH_CACHE_SECONDS} s); MLflow processes holding "
            f"either: {holders or 'none'}"
        )

    def browser_runs_page(self, inst: Instance) -> tuple[bool, str]:
        """alice signs in from Chromium at the custom host over HTTPS (the browser's prompt) and
        sees her run; every request of the page reaches MLflow through the load balancer."""
        host = self.target.public_host()
        url = f"https://{host}/#/experiments/{self.journey['experiment_id']}/runs"
        shot = self.work / f"runs-page-{self.target.env}.png"
        before = len(self._lb_log())
        visit = browser.visit(
            host,
            self._lb_port(),
            url,
            credentials=("alice", self.passwords["alice"]),
            wait_for=self.journey["run_name"],
            screenshot=shot,
        )
        lines = self._lb_log()[before:]
        api = [(status, u) for status, u in visit.statuses if "/ajax-api/" in u or "/api/" in u]
        refused = [(status, u) for status, u in api if status in (401, 403)]
        shown = self.journey["run_name"] in visit.dom
        self.report.figures[f"screenshot {self.target.env}"] = str(shot)
        self.report.figures[f"{self.target.env} runs page shown after"] = f"{visit.seconds:.1f} s"
        evidence = (
            f"{url} as alice: run {self.journey['run_name']!r} {'shown' if shown else 'NOT shown'} after "
            f"{visit.seconds:.1f} s; {visit.challenges} sign-in prompt(s) answered; {len(lines)} requests "
            f"through the load balancer ({sum(' - alice [' in line for line in lines)} signed in as alice), "
            f"{len(api)} API calls, {len(refused)} refused" + (f"; first: {refused[0]}" if refused else "")
            + (f"; server log: {self._log_line(inst, 'Blocked cross-origin')}" if refused else "")
        )  # fmt: skip
        return shown and visit.challenges >= 1 and bool(api) and not refused, evidence

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
        """RDS rotates the master password: MLflow never held it, so it keeps serving with no
        restart; its new connections log in with new tokens; the handler reads the new password."""
        unit = inst.units["mlflow.service"]
        proc, crashes = unit.proc, unit.crashes
        master, old = self.target.db_username, self.db_password_now()
        new = secrets.token_urlsafe(18)
        self.db.sql(f"ALTER USER '{master}'@'%' IDENTIFIED BY '{new}'")
        self.client("secretsmanager").put_secret_value(
            SecretId=self.db_secret_arn, SecretString=json.dumps({"username": master, "password": new})
        )
        before = len(self.db.verifier.decisions())
        # MLflow's pooled sessions end (as after a failover): what it does next needs new ones.
        killed = self.db.kill_connections(self.db_user)
        statuses = [self.http(inst, "127.0.0.1", None, post=False)[0] for _ in range(6)]
        fresh = [
            d for d in self.db.verifier.decisions()[before:] if d["accepted"] and d["user"] == self.db_user
        ]
        ages = [round(d["age_seconds"], 1) for d in fresh]
        try:
            self.connect(master, old).close()
            old_refused = False
        except pymysql.err.OperationalError:
            old_refused = True
        handled = self.provision(self.db_name)
        same_process = (
            unit.proc is proc and unit.crashes == crashes and proc is not None and proc.poll() is None
        )
        ok = (
            same_process and all(s == 200 for s in statuses) and bool(fresh) and max(ages) < 5 and old_refused
        )
        return ok, (
            f"mlflow.service {'not restarted' if same_process else 'RESTARTED'} (pid {proc.pid if proc else '?'}); "
            f"{killed} sessions ended; requests {statuses}; {len(fresh)} new logins, token ages {ages} s; "
            f"old master password {'refused' if old_refused else 'STILL ACCEPTED'}; "
            f"handler with the new one: {len(handled['grants'])} grants"
        )

    def race(self) -> tuple[bool, str]:
        """Instances started together on two empty databases (as a fresh ASG launches them): each
        schema is created by exactly one of them, the others verify it; one administrator."""
        race_db, race_auth = self.db_name + "_race", self.auth_db_name + "_race"
        for name in (race_db, race_auth):
            self.db.create_database(name)  # another stack's databases, its mlflow user by its own Lambda
        self.provision(race_db, race_auth)
        ssm = self.client("ssm")
        for setting, value in (("db_name", race_db), ("db_auth_name", race_auth)):
            name = next(
                v["name"]
                for v in self.target.resources("aws_ssm_parameter").values()
                if v["name"].endswith(f"/{setting}")
            )
            ssm.put_parameter(Name=name, Value=value, Type="String", Overwrite=True)
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
        said = Counter(
            kind
            for inst in group
            for line in inst.server_log.read_text(errors="replace").splitlines()
            for kind in (
                "tracking schema created",
                "sign-in schema created",
                "tracking schema verified",
                "sign-in schema verified",
            )
            if kind in line
        )
        admins = int(self.db.sql("SELECT COUNT(*) FROM users WHERE is_admin = 1", race_auth).strip())
        if said["tracking schema created"] != 1 or said["sign-in schema created"] != 1 or admins != 1:
            bad.append(f"schemas: {dict(said)}; administrators: {admins}")
        results.append(f"{dict(said)}; administrators {admins}")
        for inst in group:
            unit = inst.units["mlflow.service"]
            log = inst.server_log.read_text(errors="replace").splitlines()
            errors = [line.strip()[:160] for e in RACE_ERRORS for line in log if e in line]
            self.report.figures[f"{inst.name} start to healthy"] = (
                f"{inst.healthy_after:.1f} s" if inst.healthy_after else "never"
            )
            self.report.figures[f"{inst.name} memory"] = self._memory(inst.processes())
            if unit.crashes or errors or inst.healthy_after is None:
                bad.append(f"{inst.name}: {unit.crashes} crash(es) {unit.exits}; {errors[:2]}")
        return not bad, "; ".join(results + bad)

    def grants_used(self) -> tuple[bool, str]:
        """Every statement MLflow sent (schema creation, all migrations, the journey, the race),
        from the general log: each granted privilege is needed by some, none needs another."""
        log = self.db.general_log.read_text(errors="replace")
        sent = grants.statements(log, self.db_user, exclude=self.probe_sessions)
        use = grants.Use.of(sent)
        granted = set(handler.PRIVILEGES)
        unused, missing = sorted(granted - set(use.counts)), sorted(set(use.counts) - granted)
        evidence = f"{len(sent)} statements: " + ", ".join(f"{p} {use.counts[p]}" for p in handler.PRIVILEGES)
        if unused:
            evidence += f"; granted, never needed: {unused}"
        if missing:
            evidence += f"; needed, not granted: {missing}"
        if use.unknown:
            evidence += f"; {len(use.unknown)} of unknown kind, e.g. {use.unknown[0][:120]!r}"
        example = use.examples.get("TRIGGER") or use.examples.get("REFERENCES")
        return not unused and not missing and not use.unknown, evidence + (
            f"; e.g. {example[:100]!r}" if example else ""
        )

    def token_figures(self) -> None:
        decisions = self.db.verifier.decisions()
        refused = Counter(d["refusal"] for d in decisions if not d["accepted"])
        self.report.figures["IAM tokens accepted by the verifier"] = str(
            sum(d["accepted"] for d in decisions)
        )
        self.report.figures["IAM tokens refused by the verifier"] = f"{sum(refused.values())} {dict(refused)}"

    def db_password_now(self) -> str:
        value = self.client("secretsmanager").get_secret_value(SecretId=self.db_secret_arn)["SecretString"]
        password: str = json.loads(value)["password"]
        return password

    @staticmethod
    def _memory(found: list[procs.Process]) -> str:
        m = procs.memory(found)
        return f"{m.processes} processes ({procs.kinds(found)}), RSS {m.rss_mib:.0f} MiB, PSS {m.pss_mib:.0f} MiB"

    def memory_headroom(self, inst: Instance) -> tuple[bool, str]:
        found = inst.processes()  # one snapshot for the figure and the verdict
        self.report.figures[f"{inst.name} memory"] = self._memory(found)
        t = self.target
        ok, evidence = memory.headroom(found, t.instance_type, t.workers, t.cache_enabled)
        print(evidence, flush=True)
        return ok, evidence

    def throughput_step(self, inst: Instance) -> None:
        self.report.step(
            f"what sign-in costs: {THROUGHPUT_CLIENTS} clients, {THROUGHPUT_ROUNDS} x {THROUGHPUT_SECONDS:.0f} s per server",
            lambda: self.throughput(inst),
            "21",
        )

    def _variant(
        self, name: str, argv: list[str], env: dict[str, str]
    ) -> tuple[subprocess.Popen[bytes], int]:
        """Another MLflow server beside the instance's, on a free port, waited for; and its port."""
        port = procs.free_port()
        argv = [*argv]
        argv[argv.index("--port") + 1] = str(port)
        proc = procs.start(argv, self.work / "throughput" / f"{name}.log", env)
        try:
            procs.wait_until(
                f"{name} /health", lambda: procs.http_ok(f"http://127.0.0.1:{port}/health"), 120, 0.5
            )
        except Exception:
            procs.stop(proc)
            raise
        return proc, port

    def throughput(self, inst: Instance) -> tuple[bool, str]:
        """What sign-in costs (issue 21, item 7): the tracking API under THROUGHPUT_CLIENTS clients
        (rehearsal/load.py), all servers on this rehearsal's MariaDB (TLS, IAM tokens unless bare):

        - the deployed path: load balancer (TLS) -> instance nginx -> MLflow with sign-in;
        - MLflow with sign-in as deployed (mlflow_signin), on its own port;
        - the same server with MLflow's sign-in as shipped (no mlflow_signin);
        - the same server without sign-in (the same command without --app-name);
        - a bare ``mlflow server`` logging in as the master user with its password.

        The servers beside the instance's take its command line and environment from /proc and run
        together; the cases are measured one after the other, THROUGHPUT_ROUNDS times in turn, and
        each case's rounds combined (load.combine). Passes when every case ran without an error and
        the instance's server runs mlflow_signin's app (its log has no "runs as shipped" line); the
        share of throughput sign-in keeps is a figure with its target (THROUGHPUT_TARGET), not a
        verdict: two shared cores make it vary by +-15 % from run to run (make bench THROUGHPUT=1)."""
        assert self.lb is not None
        main_pid = inst.units["mlflow.service"].proc.pid  # type: ignore[union-attr]
        argv = Path(f"/proc/{main_pid}/cmdline").read_bytes().decode().split("\0")[:-1]
        env = dict(
            item.split("=", 1)
            for item in Path(f"/proc/{main_pid}/environ").read_bytes().decode().split("\0")
            if "=" in item
        )
        if argv[1:3] != ["-m", "mlflow_signin"] or "basic-auth" not in argv:
            return False, f"the instance's MLflow is not started through mlflow_signin: {argv[:6]}"
        shipped = [str(self.venv / "bin" / "mlflow"), *argv[3:]]
        i = argv.index("--app-name")
        unsigned = [*argv[:i], *argv[i + 2 :]]
        master = urllib.parse.quote(self.target.db_username, safe="")
        bare_uri = (
            f"mysql+pymysql://{master}:{urllib.parse.quote(self.db_password_now(), safe='')}"
            f"@127.0.0.1:{self.db.port}/{self.db_name}?ssl_ca={self.tls.ca}"
        )
        bare = [str(self.venv / "bin" / "mlflow"), "server", "--backend-store-uri", bare_uri,
                "--artifacts-destination", str(self.work / "throughput" / "artifacts"), "--serve-artifacts",
                "--host", "127.0.0.1", "--port", "0", "--workers", str(self.target.workers)]  # fmt: skip
        bare_env = {k: v for k, v in env.items() if not k.startswith(("MLFLOW_AUTH", "MLFLOW_BACKEND"))}
        alice = ("alice", self.passwords["alice"])
        host = self.target.public_host()
        lb_context = ssl.create_default_context(cafile=str(self.tls.ca))
        # label -> (base URL, credentials, the server's processes, load.measure's extra arguments)
        cases: dict[str, tuple[str, tuple[str, str] | None, int, dict[str, Any]]] = {
            "same server, no sign-in": ("", None, 0, {}),
            "sign-in as deployed (mlflow_signin)": (
                f"http://127.0.0.1:{inst.mlflow_port}",
                alice,
                main_pid,
                {},
            ),
            "sign-in, deployed path (LB TLS, nginx)": (
                f"https://{host}:{self.lb.https_port}",
                alice,
                main_pid,
                {"host": host, "resolve": "127.0.0.1", "ssl_context": lb_context},
            ),
            "sign-in as MLflow ships it": ("", alice, 0, {}),
            "bare mlflow server (master password)": ("", None, 0, {}),
        }
        variants = {
            "same server, no sign-in": (unsigned, env),
            "sign-in as MLflow ships it": (shipped, env),
            "bare mlflow server (master password)": (bare, bare_env),
        }
        started: list[subprocess.Popen[bytes]] = []
        rounds: dict[str, list[load.Figures]] = {label: [] for label in cases}
        try:
            for label, (command, variant_env) in variants.items():
                proc, port = self._variant(
                    re.sub(r"[^a-z0-9]+", "-", label.lower()).strip("-"), command, variant_env
                )
                started.append(proc)
                _, auth, _, extra = cases[label]
                cases[label] = (f"http://127.0.0.1:{port}", auth, proc.pid, extra)
            for _ in range(THROUGHPUT_ROUNDS):
                for label, (url, auth, pid, extra) in cases.items():
                    rounds[label].append(
                        load.measure(
                            label,
                            url,
                            auth,
                            lambda pid=pid: procs.tree(pid),  # type: ignore[misc]
                            clients=THROUGHPUT_CLIENTS,
                            seconds=THROUGHPUT_SECONDS,
                            **({"host": "127.0.0.1"} | extra),
                        )
                    )
        finally:
            for proc in started:
                procs.stop(proc)
        rows = {label: load.combine(found) for label, found in rounds.items()}
        table = load.compare(list(rows.values()))
        print(table, flush=True)
        unsigned_row = rows["same server, no sign-in"]
        deployed, shipped_row = (
            rows["sign-in as deployed (mlflow_signin)"],
            rows["sign-in as MLflow ships it"],
        )
        ratio = load.throughput_ratio(deployed, unsigned_row)
        shipped_ratio = load.throughput_ratio(shipped_row, unsigned_row)
        cpu_share = unsigned_row.cpu_ms_per_request / deployed.cpu_ms_per_request
        for row in rows.values():
            self.report.figures[f"throughput: {row.label}"] = row.line()
        met = "met" if ratio >= THROUGHPUT_TARGET else "NOT met"
        self.report.figures["sign-in keeps of the throughput without it"] = (
            f"{ratio:.2f} as deployed (target {THROUGHPUT_TARGET}: {met}; server CPU per request "
            f"{cpu_share:.2f}), {shipped_ratio:.2f} as MLflow ships it"
        )
        (self.work / "throughput" / "table.md").write_text(table + "\n")
        broken = [f"{row.label}: {row.problem or row.error_kinds}" for row in rows.values() if not row.ok]
        as_shipped = self._log_line(inst, "runs as shipped").replace("(none)", "")
        ok = not broken and not as_shipped
        return ok, (
            f"sign-in as deployed keeps {ratio:.2f} of the same server's throughput without sign-in "
            f"(target {THROUGHPUT_TARGET}: {met}), MLflow's as shipped {shipped_ratio:.2f}; "
            f"{THROUGHPUT_ROUNDS} rounds of {THROUGHPUT_SECONDS:.0f} s per case"
            + (f"; failed: {broken}" if broken else "")
            + (f"; the instance's server runs MLflow's app as shipped: {as_shipped}" if as_shipped else "")
            + "\n"
            + table
        )

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
            if not r.step(
                "database user created by the db-users Lambda handler (run twice: idempotent)",
                self.db_user_created,
                "10",
            ):
                return r
            main = self.new_instance("instance")
            redis_before = self.redis.connections_received() if self.redis else 0
            if not r.step("boot script, units started, healthy through nginx", lambda: self.boot(main)):
                return r
            host = t.public_host()
            if not r.step(
                f"load balancer: https://{host} with its certificate, port 80 redirects",
                lambda: self.start_load_balancer(main),
            ):
                return r
            r.step(
                "sign-in required: API, UI and /version 401 without credentials; /health open",
                lambda: self.signin_required(main),
                "21",
            )
            people = r.step(
                "ops mlflow user create: two people and an automation account sign in",
                lambda: self.people(main),
                "21",
            )
            if not people or self.throughput_only:
                if people:
                    self.throughput_step(main)
                return r
            if r.step(
                "MLflow client as alice: experiment, params, metrics, 8 MiB artifact, model",
                lambda: self.user_journey(main),
            ):
                r.step("data stored: rows in MariaDB, objects in the bucket", self.stored)
            r.step(
                f"MLflow logs in as {self.db_user} with IAM tokens; no process holds the master password",
                lambda: self.iam_login(main),
                "10",
            )
            r.step(
                f"allowed Host {host}",
                lambda: self.expect(main, host, None, False, 200),
                "2",
            )
            r.step(
                "disallowed Host evil.example.com refused",
                lambda: self.expect(main, "evil.example.com", None, False, 403),
            )
            r.step(
                f"allowed Origin https://{host} (browser POST)",
                lambda: self.expect(main, host, f"https://{host}", True, 200),
                "1",
            )
            for origin in (f"http://{host}", "https://evil.example.com"):
                r.step(
                    f"disallowed Origin {origin} refused",
                    lambda origin=origin: self.expect(main, host, origin, True, 403),  # type: ignore[misc]
                    "21",
                )
            if self.journey:
                r.step(
                    "browser: alice signs in at the custom host over HTTPS and sees her run",
                    lambda: self.browser_runs_page(main),
                    "1, 21",
                )
                r.step(
                    "permissions: bob refused, READ reads but cannot write, EDIT writes, revoke refused within the grant cache (ops mlflow grant/revoke)",
                    lambda: self.permissions(main),
                    "21",
                )
            r.step(
                "ops mlflow admin rotate: new password at once, old one refused within the cache's 30 s",
                lambda: self.admin_rotation(main),
                "21",
            )
            if self.redis is not None:
                r.step(
                    "cache on: MLflow uses Redis (TLS + the token from Secrets Manager)",
                    lambda: self.redis_used(redis_before),
                    "4, 21",
                )
            r.step("memory at rest leaves headroom", lambda: self.memory_headroom(main), "5")
            self.throughput_step(main)
            r.step(f"{self.db_user} cannot do what it was not granted", self.not_granted, "10")
            r.step("a wrong or expired token is refused", self.bad_tokens, "10")
            r.step(
                "master password rotated: MLflow keeps serving, no restart, fresh tokens; handler still works",
                lambda: self.rotation(main),
                "10",
            )
            main.stop()
            r.step(
                f"{RACE_INSTANCES} instances at once on empty databases: each schema created once, as {self.db_user}",
                self.race,
                "3, 21",
            )
            r.step("granted privileges: each one used by MLflow, nothing else needed", self.grants_used, "10")
            r.step("no traffic beyond 127.0.0.1 (telemetry)", self.no_egress, "5")
        finally:
            self.token_figures()
            self.stop()
        return r

    def stop(self) -> None:
        for inst in self.instances:
            inst.stop()
        for server in (self.lb, self.redis, self.moto, self.db):
            if server is not None:
                server.stop()
        self.trap.stop()
        self.imds.stop()


def _database_privileges(grant_lines: list[str], database: str) -> set[str]:
    """The privileges SHOW GRANTS lists on ``database``.* (whose _ it shows escaped)."""
    for line in grant_lines:
        match = GRANT_LINE.match(line)
        if match and match.group(2).replace("\\_", "_") == database:
            return set(match.group(1).split(", "))
    return set()


class _CustomHostHTTPS(http.client.HTTPSConnection):
    """HTTPS to the load balancer on 127.0.0.1, its certificate checked against the custom host
    (SNI and name), as a client that resolved the host to it."""

    def __init__(self, host: str, port: int, context: ssl.SSLContext) -> None:
        super().__init__(host, port, timeout=30, context=context)
        self.tls_context = context

    def connect(self) -> None:
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=self.timeout)
        self.sock = self.tls_context.wrap_socket(sock, server_hostname=self.host)
