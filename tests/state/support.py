"""Real Terraform against a local S3/DynamoDB/KMS server (moto), with stacks built by our backend code.

Provider plugins cannot be downloaded here, so the stacks under test are *probe stacks*: a
``PlatformStack`` of a real kind and environment (same stack id, same backend code, same
local/S3 switch as the real stack class) whose resources are Terraform's built-in
``terraform_data``. Their backend comes from the environment's real ``backend_configs/<env>.config``
plus test-only endpoint lines pointing at moto on 127.0.0.1.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from cdktf import App, DataResource, LocalExecProvisioner, TerraformOutput, TerraformVariable
from constructs import Construct

from ops.runner import StateInfo, Terraform, state_info
from platform_config import naming
from platform_config.loader import BACKEND_DIR, TFVARS_DIR, Environment, load_environments
from stacks.app import stack_class
from stacks.base import PlatformStack
from tests.conftest import ROOT, shipped_env_names

ENVS = shipped_env_names()
# The probe's ``round`` default: what a plan without -var compares against ("the committed code").
COMMITTED = "committed"
# Created in the working directory once an apply is inside its provisioner: lock taken, state
# read, final write still to come.
HOLDING_MARKER = "apply-is-holding.marker"
# Created by the test (``Applier.release``) to end that hold before its ``hold_seconds`` bound.
RELEASE_MARKER = "apply-may-finish.marker"
LOCK_ERROR = "Error acquiring the state lock"
# The Databricks seed's state: lineage and serial of the bundle's real state file.
SEED_STATE = ROOT / "tests" / "fixtures" / "databricks_seed_state.json"
SEED_LINEAGE = "8ac9ae2e-dc90-fc6f-07e9-e0a885d24582"


# A request line of the server's log (werkzeug; the method and path may be wrapped in colour codes).
_REFUSED_LOCKFILE_WRITE = re.compile(r'"\S*PUT /\S+\.tflock\?x-id=PutObject HTTP/1\.1\S*" 412 ')


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class MotoServer:
    """moto's server (``moto_serve.py``) as a child process on 127.0.0.1; optionally journaling
    every request so a killed server can be brought back with its data (the crash test), or
    dropping the answer to one lock write (the lost-answer test)."""

    def __init__(self, workdir: Path, journal: bool = False, lose_lock_answer: str | None = None) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.journal = workdir / "moto-journal.jsonl" if journal else None
        # "dynamodb" or "s3": the server drops the answer to the first lock write of that kind.
        self.lose_lock_answer = lose_lock_answer
        self.proc: subprocess.Popen[bytes] | None = None
        self._clients: dict[str, Any] = {}

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        if self.journal is not None:
            env.update(MOTO_ENABLE_RECORDING="True", MOTO_RECORDER_FILEPATH=str(self.journal))
        log = (self.workdir / "moto.log").open("ab")
        env["MOTO_PORT"] = str(self.port)
        faults = ["--lose-lock-answer", self.lose_lock_answer] if self.lose_lock_answer else []
        self.proc = subprocess.Popen(
            [
                sys.executable,
                str(Path(__file__).with_name("moto_serve.py")),
                "-H",
                "127.0.0.1",
                "-p",
                str(self.port),
                *faults,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"moto_server exited: {(self.workdir / 'moto.log').read_text()[-2000:]}")
            try:
                urllib.request.urlopen(f"{self.url}/moto-api/", timeout=1).close()
                return
            except (urllib.error.URLError, OSError):
                time.sleep(0.1)
        raise RuntimeError("moto_server did not start within 30 s")

    def restart(self) -> None:
        """Start again on the same port (the stacks' backend config names it)."""
        self.proc = None
        self._clients.clear()
        deadline = time.monotonic() + 30
        while True:
            try:
                with socket.socket() as s:
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                    s.bind(("127.0.0.1", self.port))
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        self.start()

    def kill(self) -> None:
        """SIGKILL: the server vanishes mid-conversation, as a crashed endpoint would."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()

    def _post(self, path: str) -> None:
        req = urllib.request.Request(f"{self.url}{path}", data=b"", method="POST")
        urllib.request.urlopen(req, timeout=60).close()

    def reset(self) -> None:
        self._post("/moto-api/reset")

    def replay(self) -> None:
        """Replay the journal of a killed server into this (restarted) one."""
        self._post("/moto-api/recorder/replay-recording")

    def client(self, service: str) -> Any:
        if service not in self._clients:
            self._clients[service] = self._new_client(service)
        return self._clients[service]

    def _new_client(self, service: str) -> Any:
        import boto3

        return boto3.client(
            service,
            endpoint_url=self.url,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )

    def create_backend(self, env: str) -> None:
        """What ``bootstrap-<env>`` creates for real: versioned bucket, lock table, KMS key + alias."""
        bucket = naming.state_bucket(env)
        s3 = self.client("s3")
        s3.create_bucket(Bucket=bucket)
        s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
        self.client("dynamodb").create_table(
            TableName=naming.lock_table(env),
            KeySchema=[{"AttributeName": "LockID", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "LockID", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        kms = self.client("kms")
        key_id = kms.create_key(Description=f"state key {env}")["KeyMetadata"]["KeyId"]
        kms.create_alias(AliasName=naming.state_kms_alias(env), TargetKeyId=key_id)

    # --- what the backend holds ------------------------------------------------------------
    def state_object(self, env: str, kind: str) -> bytes | None:
        try:
            body: bytes = (
                self.client("s3")
                .get_object(Bucket=naming.state_bucket(env), Key=naming.state_key(kind))["Body"]
                .read()
            )
        except self.client("s3").exceptions.NoSuchKey:
            return None
        return body

    def state_versions(self, env: str, kind: str) -> list[dict[str, Any]]:
        """Every stored version of the stack's state object, newest first."""
        s3 = self.client("s3")
        out = s3.list_object_versions(Bucket=naming.state_bucket(env), Prefix=naming.state_key(kind))
        versions = [v for v in out.get("Versions", []) if v["Key"] == naming.state_key(kind)]
        return sorted(versions, key=lambda v: v["LastModified"], reverse=True)

    def version_body(self, env: str, kind: str, version_id: str) -> bytes:
        s3 = self.client("s3")
        body: bytes = s3.get_object(
            Bucket=naming.state_bucket(env), Key=naming.state_key(kind), VersionId=version_id
        )["Body"].read()
        return body

    def lockfile_present(self, env: str, kind: str) -> bool:
        s3 = self.client("s3")
        key = naming.state_key(kind) + ".tflock"
        out = s3.list_objects_v2(Bucket=naming.state_bucket(env), Prefix=key)
        return any(o["Key"] == key for o in out.get("Contents", []))

    def lock_items(self, env: str) -> dict[str, dict[str, Any]]:
        """The DynamoDB lock table's items by LockID (lock entries and ``-md5`` digests)."""
        items = self.client("dynamodb").scan(TableName=naming.lock_table(env))["Items"]
        return {i["LockID"]["S"]: i for i in items}

    def put_state(self, env: str, kind: str, body: bytes) -> None:
        self.client("s3").put_object(Bucket=naming.state_bucket(env), Key=naming.state_key(kind), Body=body)

    def refused_lockfile_writes(self) -> int:
        """How many ``.tflock`` uploads the server has refused (412: the lockfile exists), from its
        request log."""
        log = (self.workdir / "moto.log").read_text(errors="replace")
        return len(_REFUSED_LOCKFILE_WRITE.findall(log))

    def is_locked(self, env: str, kind: str) -> bool:
        """Whether any lock artefact of the environment's lock mechanism(s) is present."""
        lock_id = f"{naming.state_bucket(env)}/{naming.state_key(kind)}"
        return self.lockfile_present(env, kind) or lock_id in self.lock_items(env)


@contextmanager
def private_server(
    workdir: Path, env: str, journal: bool = False, lose_lock_answer: str | None = None
) -> Iterator[MotoServer]:
    """A server for one test alone (one to kill, or one that drops an answer), holding ``env``'s
    backend; the shared server stays untouched."""
    server = MotoServer(workdir, journal=journal, lose_lock_answer=lose_lock_answer)
    server.workdir.mkdir()
    server.start()
    try:
        server.create_backend(env)
        yield server
    finally:
        server.stop()


def terraform_env(workdir: Path, stub_providers: tuple[str, ...] = ()) -> dict[str, str]:
    """Environment of every Terraform run: fake credentials, nothing but 127.0.0.1.

    The CLI config installs providers only from a local mirror, so no run can reach a registry.
    ``stub_providers`` (e.g. ``databricks/databricks``, or ``databricks/databricks@1.99.0`` for the
    version a synthesized stack pins) get a placeholder executable there: enough for ``init`` to
    accept a state that names them; the state commands never start a provider.
    """
    mirror = workdir / "provider-mirror"
    mirror.mkdir(exist_ok=True)
    for entry in stub_providers:
        source, _, version = entry.partition("@")
        version = version or "0.0.1"
        name = source.rsplit("/", 1)[-1]
        plugin_dir = mirror / "registry.terraform.io" / source / version / _platform()
        plugin_dir.mkdir(parents=True, exist_ok=True)
        stub = plugin_dir / f"terraform-provider-{name}_v{version}"
        stub.write_text("#!/bin/sh\necho 'placeholder provider: not runnable' >&2\nexit 1\n")
        stub.chmod(0o755)
    rc = workdir / "terraformrc"
    rc.write_text(
        "provider_installation {\n"
        f'  filesystem_mirror {{\n    path = "{mirror}"\n    include = ["*/*/*"]\n  }}\n'
        '  direct {\n    exclude = ["*/*/*"]\n  }\n'
        "}\n"
    )
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("AWS_", "TF_")) and k.lower() not in {"http_proxy", "https_proxy", "all_proxy"}
    }
    env.update(
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_REGION="us-east-1",
        AWS_EC2_METADATA_DISABLED="true",
        TF_CLI_CONFIG_FILE=str(rc),
        TF_IN_AUTOMATION="1",
        CHECKPOINT_DISABLE="1",
        NO_PROXY="127.0.0.1",
        no_proxy="127.0.0.1",
    )
    return env


def _platform() -> str:
    if not _PLATFORM:
        out = subprocess.run(["terraform", "version", "-json"], capture_output=True, text=True, check=True)
        _PLATFORM.append(json.loads(out.stdout)["platform"])
    return _PLATFORM[0]


_PLATFORM: list[str] = []


def server_environment(env: str, endpoint: str, bootstrap_state: str | None = None) -> Environment:
    """The environment as loaded from the repository's two files, plus test-only endpoint lines.

    ``bootstrap_state`` flips the project's phase switch in the tfvars text, as a user would.
    """
    tfvars = (ROOT / TFVARS_DIR / f"{env}.tfvars").read_text()
    if bootstrap_state is not None:
        tfvars, n = re.subn(
            r'^bootstrap_state\s*=\s*"[a-z0-9]+"',
            f'bootstrap_state = "{bootstrap_state}"',
            tfvars,
            flags=re.M,
        )
        assert n == 1, f"no bootstrap_state line in {env}.tfvars"
    backend = (ROOT / BACKEND_DIR / f"{env}.config").read_text() + (
        "\n# test only: the local S3/DynamoDB server\n"
        f'endpoints = {{ s3 = "{endpoint}", dynamodb = "{endpoint}", sts = "{endpoint}", iam = "{endpoint}" }}\n'
        "use_path_style = true\n"
        "skip_credentials_validation = true\n"
        "skip_requesting_account_id = true\n"
        "skip_metadata_api_check = true\n"
        "skip_region_validation = true\n"
    )
    [loaded] = load_environments(
        {f"{TFVARS_DIR}/{env}.tfvars": tfvars}, {f"{BACKEND_DIR}/{env}.config": backend}
    )
    return loaded


class ProbeStack(PlatformStack):
    """A stack of kind ``kind`` whose backend is chosen exactly as the real stack class chooses it."""

    kind = "bootstrap"

    def __init__(self, scope: Construct, env: Environment) -> None:
        super().__init__(scope, env)
        round_ = TerraformVariable(
            self, "round", type="string", default=COMMITTED, description="Value written"
        )
        hold = TerraformVariable(
            self,
            "hold_seconds",
            type="number",
            default=0,
            description="How long the apply holds the lock at most (whole seconds)",
        )
        DataResource(self, "fixed", input={"stack": self.node.id})
        payload = DataResource(
            self,
            "payload",
            input={"round": round_.string_value},
            triggers_replace={"round": round_.string_value},
            # Runs on every replacement, i.e. every apply with a new round: keeps the lock held until
            # the test releases it or hold_seconds pass, in steps of 0.1 s.
            provisioners=[
                LocalExecProvisioner(
                    type="local-exec",
                    command=(
                        f"touch {HOLDING_MARKER}; i=0; "
                        f"while [ ! -e {RELEASE_MARKER} ] && [ $i -lt $(( {hold.number_value} * 10 )) ]; "
                        "do sleep 0.1; i=$((i + 1)); done"
                    ),
                )
            ],
        )
        TerraformOutput(self, "round_written", value=payload.output, description="Last value written")

    def uses_local_state(self) -> bool:
        real: Callable[[PlatformStack], bool] = stack_class(self.kind).uses_local_state
        return real(self)


def probe_class(kind: str) -> type[ProbeStack]:
    return type(f"ProbeStack_{kind}", (ProbeStack,), {"kind": kind})


def synth_probe(root: Path, env: Environment, kind: str) -> Path:
    """Synthesize the probe stack into ``<root>/cdktf.out``; returns its stack directory.

    ``root`` plays the repository root: a local backend's state lands in ``<root>/local_state``.
    """
    (root / "cdktf.out").mkdir(parents=True, exist_ok=True)
    # cdktf validates each terraform_data resource by running `terraform version` (~50 ms each, two
    # per probe); every probe is applied with the real Terraform right after, which says more.
    app = App(outdir=str(root / "cdktf.out"), skip_validation=True)
    probe_class(kind)(app, env)
    app.synth()
    return root / "cdktf.out" / "stacks" / naming.stack_id(kind, env.name)


class Applier:
    """One Terraform working directory (as on one CI runner or laptop) for a synthesized stack."""

    def __init__(self, stack_dir: Path, env: Mapping[str, str]) -> None:
        self.dir = stack_dir
        self.env = dict(env)
        self.tf = Terraform(stack_dir, self.env, timeout=120)

    def clone(self, dest: Path) -> Applier:
        shutil.copytree(self.dir, dest)
        return Applier(dest, self.env)

    def init(self) -> None:
        self.tf.init()

    def apply_args(self, value: str, hold: int = 0, lock_timeout: str = "0s") -> list[str]:
        return [
            "terraform",
            "apply",
            "-auto-approve",
            "-input=false",
            "-no-color",
            f"-lock-timeout={lock_timeout}",
            f"-var=round={value}",
            f"-var=hold_seconds={hold}",
        ]

    def apply(self, value: str, hold: int = 0, lock_timeout: str = "0s") -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.apply_args(value, hold, lock_timeout),
            cwd=self.dir,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    def start_apply(self, value: str, hold: int = 0, lock_timeout: str = "0s") -> subprocess.Popen[str]:
        """Apply in the background, in its own process group (so a test can kill it whole); it holds
        the lock for ``hold`` seconds at most, or until ``release``."""
        self.marker.unlink(missing_ok=True)
        (self.dir / RELEASE_MARKER).unlink(missing_ok=True)
        return subprocess.Popen(
            self.apply_args(value, hold, lock_timeout),
            cwd=self.dir,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )

    def release(self) -> None:
        """End the hold of the background apply: it writes its state and releases the lock now."""
        (self.dir / RELEASE_MARKER).touch()

    @property
    def marker(self) -> Path:
        return self.dir / HOLDING_MARKER

    def wait_until_holding(self, proc: subprocess.Popen[str], timeout: float = 60) -> None:
        """Block until the background apply is inside its provisioner (or fail if it died)."""

        def holding() -> bool:
            if proc.poll() is not None:
                raise AssertionError(
                    f"apply ended early ({proc.returncode}): {proc.stderr.read() if proc.stderr else ''}"
                )
            return self.marker.exists()

        wait_for(holding, timeout, what="the apply to reach its provisioner")

    def pull(self) -> tuple[StateInfo, dict[str, Any]]:
        text = self.tf.run("state", "pull").stdout
        return state_info(text, "state pull"), json.loads(text)


def written_value(state: dict[str, Any]) -> str:
    value: str = state["outputs"]["round_written"]["value"]["round"]
    return value


def ended_except_one(procs: Sequence[subprocess.Popen[str]], timeout: float) -> None:
    """Return once all of ``procs`` but one have ended, or after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while sum(p.poll() is None for p in procs) > 1 and time.monotonic() < deadline:
        time.sleep(0.05)


def wait_for(predicate: Callable[[], bool], timeout: float = 30, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


_SHARED: list[MotoServer] = []


@pytest.fixture(scope="session")
def moto_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    """One moto server for the whole session (modules importing this fixture share it)."""
    if not _SHARED:
        server = MotoServer(tmp_path_factory.mktemp("moto"))
        server.start()
        _SHARED.append(server)
    yield _SHARED[0]
    _SHARED[0].stop()


@pytest.fixture
def backend(moto_server: MotoServer) -> MotoServer:
    """The shared server, emptied, holding every environment's bucket, lock table and key."""
    moto_server.reset()
    for env in ENVS:
        moto_server.create_backend(env)
    return moto_server


def md5_hex(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()
