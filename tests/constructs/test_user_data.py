"""The MLflow instances' boot script: rendered in Python, checked as the instances receive it."""

from __future__ import annotations

import base64
import importlib.metadata
import json
import os
import re
import subprocess
import sys
import urllib.parse
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from constructs_lib import user_data
from constructs_lib.user_data import TEMPLATE, UserDataValues, encode, render
from platform_config.mlflow_constraints import CONSTRAINTS
from platform_config.secrets import secret_kind
from tests.conftest import Synthesized, shipped_env_names

BASE_SETTINGS = ("db_host", "db_port", "db_name", "db_user", "artifacts_destination", "alb_dns_name")
CACHE_SETTINGS = ("redis_host", "redis_port", "redis_auth_secret_arn")
VALUES = UserDataValues(
    region="eu-west-1",
    environment="dev",
    parameter_path="/mlopspltf-dev/mlflow",
    mlflow_version="3.17.2",
    constraints=CONSTRAINTS,
    workers=2,
    extra_allowed_hosts="mlflow.example.com",
    cache_enabled=True,
    log_group_server="/mlopspltf-dev/mlflow/server",
    log_group_nginx="/mlopspltf-dev/mlflow/nginx",
    log_group_system="/mlopspltf-dev/mlflow/system",
    metrics_namespace="mlopspltf-dev-mlflow/instances",
    nginx_port=80,
    parameters=BASE_SETTINGS + CACHE_SETTINGS,
)


@pytest.fixture(scope="module")
def scripts(synth: Synthesized) -> dict[str, str]:
    """The user data of every environment, decoded from the synthesized launch templates."""
    out = {}
    for env in shipped_env_names():
        lt = synth.resources(f"mlflow-{env}", "aws_launch_template")["mlflow"]
        out[env] = base64.b64decode(lt["user_data"]).decode()
    return out


def heredoc(script: str, tag: str) -> str:
    match = re.search(rf"<<'{tag}'\n(.*?)\n{tag}\n", script, re.S)
    assert match, tag
    return match.group(1)


def test_every_placeholder_is_filled(scripts: dict[str, str]) -> None:
    assert set(re.findall(r"@@([A-Z0-9_]+)@@", TEMPLATE)) >= {
        "REGION",
        "PARAMETER_PATH",
        "MLFLOW_VERSION",
        "CONSTRAINTS",
    }
    for env, script in scripts.items():
        assert "@@" not in script, env
        assert f'PARAMETER_PATH="/mlopspltf-{env}/mlflow"' in script


def test_rendering_refuses_missing_and_unsafe_values(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError, match="unsafe"):
        render(replace(VALUES, extra_allowed_hosts='x"; rm -rf /'))
    with pytest.raises(ValueError, match="unsafe"):
        render(replace(VALUES, log_group_server="${TfToken[TOKEN.1]}"))
    monkeypatch.setattr(user_data, "TEMPLATE", TEMPLATE + "@@NOT_A_VALUE@@\n")
    with pytest.raises(ValueError, match="NOT_A_VALUE"):
        render(VALUES)


def test_no_secret_in_user_data(scripts: dict[str, str]) -> None:
    for env, script in scripts.items():
        assert secret_kind(script) is None, env
        assert "arn:aws" not in script and "${" not in script.replace("${aws:AutoScalingGroupName}", ""), env
        assert not re.search(r"(?i)(password|token)\s*=\s*['\"][^'\"]", script), env


def test_bash_syntax(scripts: dict[str, str], tmp_path: Path) -> None:
    files = []
    for env, script in {**scripts, "rendered": render(VALUES)}.items():
        path = tmp_path / f"{env}.sh"
        path.write_text(script)
        files.append(str(path))
    # One process checks them all.
    proc = subprocess.run(
        ["bash", "-c", 'for f in "$@"; do bash -n "$f" || exit 1; done', "bash-n", *files],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr


def test_embedded_launcher_and_agent_config_are_valid(scripts: dict[str, str]) -> None:
    for env, script in scripts.items():
        compile(heredoc(script, "PY"), f"launch.py ({env})", "exec")
        compile(heredoc(script, "IAM"), f"mlflow_rds_iam.py ({env})", "exec")
        agent = json.loads(heredoc(script, "JSON"))
        groups = {f["log_group_name"] for f in agent["logs"]["logs_collected"]["files"]["collect_list"]}
        assert groups == {f"/mlopspltf-{env}/mlflow/{p}" for p in ("server", "nginx", "system")}


def test_mlflow_and_its_dependencies_are_pinned(scripts: dict[str, str], synth: Synthesized) -> None:
    for env, script in scripts.items():
        version = synth.env(env).settings.mlflow.mlflow_version
        # Every package of the venv is pinned by the shipped constraints, MLflow included (fix 5).
        assert heredoc(script, "PINS").splitlines() == list(CONSTRAINTS)
        assert f"mlflow=={version}" in CONSTRAINTS
        install = re.search(r"/opt/mlflow/venv/bin/pip install (.*)\\\n(.*)\n", script)
        assert install is not None
        assert "--constraint /opt/mlflow/constraints.txt" in install.group(1)
        assert install.group(2).split() == [f'"mlflow=={version}"', "pymysql", "boto3", "redis"]


def test_user_data_fits_a_launch_template(scripts: dict[str, str]) -> None:
    # EC2 takes at most 16 KB of user data; counted here as the template carries it, base64.
    for env, script in scripts.items():
        assert len(encode(script)) <= 16 * 1024, (env, len(encode(script)))


def test_served_behind_nginx(scripts: dict[str, str]) -> None:
    for script in scripts.values():
        nginx = heredoc(script, "NGINX")
        assert "location = /health" in nginx and "proxy_pass http://127.0.0.1:5000/health;" in nginx
        assert "amazon-cloudwatch-agent-ctl -a fetch-config" in script
        # No timer watching the master secret: MLflow never holds it (rotation needs no restart).
        assert "systemctl enable --now mlflow.service nginx.service" in script


@dataclass
class Launched:
    argv: list[str]
    env: dict[str, str]
    sql: list[tuple[str, tuple[object, ...]]]
    store_uris: list[str]
    clients: list[str] = field(default_factory=list)  # boto3 services, in order
    secret_ids: list[str] = field(default_factory=list)  # what was read from Secrets Manager
    connections: list[dict[str, Any]] = field(default_factory=list)  # pymysql.connect's arguments
    tokens: list[tuple[object, ...]] = field(default_factory=list)  # mlflow_rds_iam.token's arguments

    def option(self, name: str) -> str:
        return self.argv[self.argv.index(name) + 1]


def launch(script: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, params: dict[str, str]) -> Launched:
    """Run the rendered launcher with fake AWS, database and MLflow modules; what it would exec."""
    done = Launched([], {}, [], [])
    secrets = {"redis-secret": "tok"}

    class Client:
        # boto3's keyword names.
        def get_parameter(self, Name: str, WithDecryption: bool) -> dict[str, Any]:  # noqa: N803
            return {"Parameter": {"Value": params[Name.rsplit("/", 1)[1]]}}

        def get_secret_value(self, SecretId: str) -> dict[str, Any]:  # noqa: N803
            done.secret_ids.append(SecretId)
            return {"SecretString": secrets[SecretId], "VersionId": "v1"}

    class Cursor:
        def __enter__(self) -> Cursor:
            return self

        def __exit__(self, *exc: object) -> None:
            pass

        def execute(self, sql: str, args: tuple[object, ...]) -> None:
            done.sql.append((sql, args))

        def fetchone(self) -> tuple[int]:
            return (1,)

    class Connection:
        def cursor(self) -> Cursor:
            return Cursor()

        def close(self) -> None:
            done.sql.append(("close", ()))

    def store(uri: str, artifacts: str) -> None:
        # Created while the lock is held: the last statement so far is GET_LOCK.
        assert done.sql[-1][0].startswith("SELECT GET_LOCK")
        done.store_uris.append(uri)

    def execve(path: str, argv: list[str], env: dict[str, str]) -> None:
        done.argv[:], done.env = argv, env

    def client(service: str, region_name: str) -> Client:
        done.clients.append(service)
        return Client()

    def connect(**kwargs: Any) -> Connection:
        done.connections.append(kwargs)
        return Connection()

    def token(*args: object) -> str:
        done.tokens.append(args)
        return f"token-{len(done.tokens)}"

    for name, module in {
        "boto3": SimpleNamespace(client=client),
        "pymysql": SimpleNamespace(connect=connect),
        "mlflow_rds_iam": SimpleNamespace(token=token),
        "mlflow.store.tracking.sqlalchemy_store": SimpleNamespace(SqlAlchemyStore=store),
    }.items():
        monkeypatch.setitem(sys.modules, name, module)
    monkeypatch.setattr(os, "execve", execve)
    real_open = open
    namespace = {
        "__name__": "__main__",
        "open": lambda path, *a: real_open(tmp_path / Path(path).name, *a),
    }
    exec(compile(heredoc(script, "PY"), "launch.py", "exec"), namespace)
    return done


PARAMS = {
    "db_host": "db.internal",
    "db_port": "3306",
    "db_name": "mlflow",
    "db_user": "mlflow",
    "artifacts_destination": "s3://bucket/artifacts",
    "alb_dns_name": "mlopspltf-dev-mlflow-1.eu-west-1.elb.amazonaws.com",
    "redis_host": "redis.internal",
    "redis_port": "6379",
    "redis_auth_secret_arn": "redis-secret",
}


def test_launcher_allows_the_public_hosts_as_hosts_and_origins(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    done = launch(render(VALUES), monkeypatch, tmp_path, PARAMS)
    alb = PARAMS["alb_dns_name"]
    assert done.option("--allowed-hosts").split(",") == [alb, "mlflow.example.com", "localhost", "127.0.0.1"]
    # The same list, as browser origins (fix 1): POSTs from the UI carry Origin.
    assert done.option("--cors-allowed-origins").split(",") == [
        f"https://{alb}",
        f"http://{alb}",
        "https://mlflow.example.com",
        "http://mlflow.example.com",
    ]
    assert (done.option("--host"), done.option("--workers")) == ("127.0.0.1", "2")
    assert done.env["MLFLOW_DISABLE_TELEMETRY"] == "true"


def test_launcher_creates_the_schema_once_under_a_database_lock(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    done = launch(render(VALUES), monkeypatch, tmp_path, PARAMS)
    statements = [sql for sql, _ in done.sql]
    # GET_LOCK, the store (schema and migrations), RELEASE_LOCK, then exec (fix 3).
    assert statements == ["SELECT GET_LOCK(%s, %s)", "SELECT RELEASE_LOCK(%s)", "close"]
    assert done.sql[0][1] == ("mlflow-schema-init", 600)
    assert done.store_uris == [done.env["MLFLOW_BACKEND_STORE_URI"]]
    assert done.argv[:2] == ["/opt/mlflow/venv/bin/mlflow", "server"]


def test_cache_switch_reaches_the_launcher(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    on = launch(render(VALUES), monkeypatch, tmp_path, PARAMS)
    # What MLflow 3.x reads: the job queue's Huey storage, shared by the instances (fix 4).
    assert on.env["MLFLOW_SERVER_JOB_HUEY_REDIS_URL"] == "rediss://:tok@redis.internal:6379/0"
    assert "MLFLOW_SERVER_ENABLE_JOB_EXECUTION" not in on.env and "MLFLOW_REDIS_URL" not in on.env
    off_script = render(replace(VALUES, cache_enabled=False, parameters=BASE_SETTINGS))
    assert "redis_host" not in off_script.split("cat >")[0]
    off = launch(off_script, monkeypatch, tmp_path, PARAMS)
    assert off.env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] == "false"
    assert "MLFLOW_SERVER_JOB_HUEY_REDIS_URL" not in off.env


def test_constraints_must_pin_what_the_script_installs() -> None:
    with pytest.raises(ValueError, match="no version of redis"):
        render(replace(VALUES, constraints=tuple(p for p in CONSTRAINTS if not p.startswith("redis=="))))
    with pytest.raises(ValueError, match=r"not mlflow==3\.5\.0"):
        render(replace(VALUES, mlflow_version="3.5.0"))
    with pytest.raises(ValueError, match=r"not name==version"):
        render(replace(VALUES, constraints=(*CONSTRAINTS, "evil; rm -rf /")))


@pytest.mark.parametrize("cache_enabled", [False, True])
def test_launcher_reads_no_database_secret(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, cache_enabled: bool
) -> None:
    parameters = BASE_SETTINGS + (CACHE_SETTINGS if cache_enabled else ())
    done = launch(
        render(replace(VALUES, cache_enabled=cache_enabled, parameters=parameters)),
        monkeypatch,
        tmp_path,
        PARAMS,
    )
    # Secrets Manager only for Redis's AUTH token, with the cache; never for the database (fix 10).
    assert done.clients == ["ssm", "secretsmanager"] if cache_enabled else ["ssm"]
    assert done.secret_ids == (["redis-secret"] if cache_enabled else [])
    # The schema lock's connection logs in as the db_user setting with a token signed for it.
    (conn,) = done.connections
    assert done.tokens == [("db.internal", 3306, "mlflow", "eu-west-1")]
    assert (conn["host"], conn["port"], conn["user"], conn["password"]) == (
        "db.internal",
        3306,
        "mlflow",
        "token-1",
    )
    assert conn["ssl"] == {"ca": "/opt/mlflow/rds-ca.pem"}


def test_database_uri_names_the_token_plugin_and_no_password(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    uri = launch(render(VALUES), monkeypatch, tmp_path, PARAMS).env["MLFLOW_BACKEND_STORE_URI"]
    parts = urllib.parse.urlsplit(uri)
    assert (parts.scheme, parts.username, parts.password) == ("mysql+pymysql", "mlflow", None)
    # Host and port from their own settings, once each (RDS's endpoint already holds the port).
    assert (parts.hostname, parts.port, parts.path) == ("db.internal", 3306, "/mlflow")
    assert urllib.parse.parse_qs(parts.query) == {
        "ssl_ca": ["/opt/mlflow/rds-ca.pem"],
        "plugin": ["rds_iam"],
        "rds_iam_region": ["eu-west-1"],
    }


def install_token_plugin(script: str, site: Path) -> None:
    """Run the boot script's lines that install the plugin, into ``site`` instead of the venv's."""
    start = script.index("SITE=$(")
    block = script[start : script.index("\nENTRY\n", start) + len("\nENTRY\n")]
    block = f'SITE="{site}"\n' + block.split("\n", 1)[1]
    subprocess.run(["bash", "-euo", "pipefail", "-c", block], check=True, capture_output=True, timeout=30)


def test_token_plugin_gives_every_new_connection_a_fresh_token(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    listeners: list[tuple[object, str, Any]] = []
    clients: list[tuple[str, str]] = []
    signed: list[tuple[object, ...]] = []

    class Rds:
        def generate_db_auth_token(self, *args: object) -> str:
            signed.append(args)
            return f"token-{len(signed)}"

    def client(service: str, region_name: str) -> Rds:
        clients.append((service, region_name))
        return Rds()

    class CreateEnginePlugin:  # SQLAlchemy's base: keeps the URL
        def __init__(self, url: object, kwargs: dict[str, Any]) -> None:
            self.url = url

    class URL:
        def __init__(self, query: dict[str, str]) -> None:
            self.query = query

        def difference_update_query(self, names: list[str]) -> URL:
            return URL({k: v for k, v in self.query.items() if k not in names})

    def listens_for(target: object, name: str) -> Any:
        def register(fn: Any) -> Any:
            listeners.append((target, name, fn))
            return fn

        return register

    for name, module in {
        "boto3": SimpleNamespace(client=client),
        "sqlalchemy": SimpleNamespace(event=SimpleNamespace(listens_for=listens_for)),
        "sqlalchemy.engine": SimpleNamespace(CreateEnginePlugin=CreateEnginePlugin),
    }.items():
        monkeypatch.setitem(sys.modules, name, module)
    install_token_plugin(render(VALUES), tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "mlflow_rds_iam", raising=False)
    # Found as SQLAlchemy's PluginLoader finds plugins: by entry point of an installed distribution.
    (plugin_class,) = (
        ep.load()
        for dist in importlib.metadata.distributions(path=[str(tmp_path)])
        for ep in dist.entry_points.select(group="sqlalchemy.plugins", name="rds_iam")
    )
    url = URL({"ssl_ca": "/opt/mlflow/rds-ca.pem", "rds_iam_region": "eu-west-1"})
    plugin = plugin_class(url, {})
    # Its own argument leaves the URL: the driver would refuse an unknown keyword.
    assert plugin.update_url(url).query == {"ssl_ca": "/opt/mlflow/rds-ca.pem"}
    engine = object()
    plugin.engine_created(engine)
    ((target, event_name, fresh_token),) = listeners
    assert (target, event_name) == (engine, "do_connect")
    passwords = []
    for _ in range(2):  # two new connections
        cparams: dict[str, Any] = {"host": "db.internal", "port": 3306, "user": "mlflow"}
        fresh_token(None, None, [], cparams)
        passwords.append(cparams["password"])
    assert passwords == ["token-1", "token-2"]
    assert signed == [("db.internal", 3306, "mlflow", "eu-west-1")] * 2
    assert clients == [("rds", "eu-west-1")]  # one client per process, a token per connection


def test_boot_check_reads_exactly_the_settings_given() -> None:
    script = render(VALUES)
    assert f"for name in {' '.join(BASE_SETTINGS + CACHE_SETTINGS)}; do" in script


@pytest.mark.parametrize(
    ("cache_enabled", "parameters", "message"),
    [
        (True, BASE_SETTINGS, "not set: redis_auth_secret_arn, redis_host, redis_port"),
        (False, (*BASE_SETTINGS, "redis_host"), "settings nobody reads: redis_host"),
        (False, BASE_SETTINGS[1:], "not set: db_host"),
        (False, (*BASE_SETTINGS, "db host"), "unsafe setting names: db host"),
    ],
)
def test_rendering_refuses_settings_the_launcher_does_not_read(
    cache_enabled: bool, parameters: tuple[str, ...], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        render(replace(VALUES, cache_enabled=cache_enabled, parameters=parameters))
