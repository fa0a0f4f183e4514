"""The MLflow instances' boot script: rendered in Python, checked as the instances receive it."""

from __future__ import annotations

import base64
import gzip
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
from platform_config.mlflow_constraints import CONSTRAINTS, MLFLOW_VERSION
from platform_config.secrets import secret_kind
from tests.conftest import Synthesized, shipped_env_names

BASE_SETTINGS = (
    "db_host",
    "db_port",
    "db_name",
    "db_auth_name",
    "db_user",
    "artifacts_destination",
    "alb_dns_name",
    "admin_password_secret_arn",
    "flask_secret_key_secret_arn",
)
CACHE_SETTINGS = ("redis_host", "redis_port", "redis_auth_secret_arn")
VALUES = UserDataValues(
    region="eu-west-1",
    environment="dev",
    parameter_path="/mlopspltf-dev/mlflow",
    mlflow_version=MLFLOW_VERSION,
    constraints=CONSTRAINTS,
    workers=2,
    extra_allowed_hosts="mlflow.example.com",
    cache_enabled=True,
    log_group_server="/mlopspltf-dev/mlflow/server",
    log_group_nginx="/mlopspltf-dev/mlflow/nginx",
    log_group_system="/mlopspltf-dev/mlflow/system",
    metrics_namespace="mlopspltf-dev-mlflow/instances",
    nginx_port=80,
    admin_username="mlops-root",
    default_permission="NO_PERMISSIONS",
    autoscaling_group="mlopspltf-dev-mlflow",
    parameters=BASE_SETTINGS + CACHE_SETTINGS,
)
HEREDOCS = {
    "LAUNCH_PY": "launch.py",
    "RDS_IAM_PY": "mlflow_rds_iam.py",
    "SCHEMAS_PY": "mlflow_schemas.py",
    "SIGNIN_PY": "mlflow_signin.py",
}


@pytest.fixture(scope="module")
def scripts(synth: Synthesized) -> dict[str, str]:
    """The user data of every environment, decoded from the synthesized launch templates."""
    out = {}
    for env in shipped_env_names():
        lt = synth.resources(f"mlflow-{env}", "aws_launch_template")["mlflow"]
        out[env] = user_data.decode(lt["user_data"])
    return out


def heredoc(script: str, tag: str) -> str:
    match = re.search(rf"<<'{tag}'\n(.*?)\n{tag}\n", script, re.S)
    assert match, tag
    return match.group(1)


def test_every_placeholder_is_filled(scripts: dict[str, str]) -> None:
    assert set(re.findall(r"@@([A-Z0-9_]+)@@", user_data.with_instance_files(TEMPLATE))) >= {
        "REGION",
        "PARAMETER_PATH",
        "MLFLOW_VERSION",
        "CONSTRAINTS",
        "ADMIN_USERNAME",
        "DEFAULT_PERMISSION",
    }
    for env, script in scripts.items():
        assert "@@" not in script, env
        assert f'PARAMETER_PATH="/mlopspltf-{env}/mlflow/settings"' in script


def test_rendering_refuses_missing_and_unsafe_values(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError, match="unsafe"):
        render(replace(VALUES, extra_allowed_hosts='x"; rm -rf /'))
    with pytest.raises(ValueError, match="unsafe"):
        render(replace(VALUES, log_group_server="${TfToken[TOKEN.1]}"))
    monkeypatch.setattr(user_data, "TEMPLATE", TEMPLATE + "@@NOT_A_VALUE@@\n")
    with pytest.raises(ValueError, match="NOT_A_VALUE"):
        render(VALUES)


def test_comment_lines_are_left_out_and_nothing_else() -> None:
    source = (
        'x = 1\n    # gone\n# gone too\ns = """\n# kept: inside a string\n"""\ny = 2  # kept: after code\n'
    )
    kept = user_data.code_lines(source, "f.py")
    assert kept == 'x = 1\ns = """\n# kept: inside a string\n"""\ny = 2  # kept: after code\n'


def test_docstrings_are_left_out_where_the_code_stays_the_same() -> None:
    source = (
        '"""Module."""\nimport os\n\n\ndef f():\n    """Doc,\n    two lines."""\n    return os.sep\n\n\n'
        'def only():\n    """The whole body: kept."""\n\n\nclass C:\n    """Class."""\n\n    x = "not a docstring"\n'
    )
    kept = user_data.code_lines(source, "f.py")
    assert kept == (
        "import os\n\n\ndef f():\n    return os.sep\n\n\n"
        'def only():\n    """The whole body: kept."""\n\n\nclass C:\n\n    x = "not a docstring"\n'
    )


def test_a_docstring_with_other_characters_than_ascii_goes_too() -> None:
    source = 'def f():\n    """Schema → release — déjà vu."""\n    return 1\n'
    assert user_data.code_lines(source, "f.py") == "def f():\n    return 1\n"


def test_a_docstring_sharing_a_line_with_code_is_refused() -> None:
    # Its lines cannot go without the code on them, and left in, the trees would differ.
    with pytest.raises(ValueError, match=r"f\.py changed its code when its comment lines and docstrings"):
        user_data.code_lines('def f():\n    """Doc."""; return 1\n    return 2\n', "f.py")


def test_a_file_whose_code_would_change_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    # No real file is known to change (tokenize only marks comments outside strings); the check
    # is the guard in case one does: a differing syntax tree is refused, not embedded.
    calls = iter(range(2))
    monkeypatch.setattr("constructs_lib.user_data.ast.dump", lambda tree: str(next(calls)))
    with pytest.raises(ValueError, match=r"f\.py changed its code"):
        user_data.code_lines("x = 1\n# c\n", "f.py")


def test_an_instance_file_may_not_end_its_heredoc(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in HEREDOCS.values():
        (tmp_path / name).write_text((user_data.INSTANCE_DIR / name).read_text())
    (tmp_path / "launch.py").write_text("x = 1\nEOF_LAUNCH_PY\ny = 2\n")
    monkeypatch.setattr(user_data, "INSTANCE_DIR", tmp_path)
    with pytest.raises(ValueError, match=r"launch\.py holds its heredoc.s end marker EOF_LAUNCH_PY"):
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


def test_the_instance_files_are_embedded_as_they_are(scripts: dict[str, str], synth: Synthesized) -> None:
    for env, script in scripts.items():
        for tag, name in HEREDOCS.items():
            embedded = heredoc(script, f"EOF_{tag}")
            source = (user_data.INSTANCE_DIR / name).read_text()
            code = user_data.code_lines(source, name).rstrip("\n")
            # Only the comment lines are left out, and the @@NAME@@ values differ: the file is what runs.
            assert len(code) < len(source) and not re.search(r"(?m)^\s*#", code), name
            source = code
            pattern = re.escape(source)
            for placeholder in set(re.findall(r"@@[A-Z0-9_]+@@", source)):
                pattern = pattern.replace(re.escape(placeholder), '[^"\n]*')
            assert re.fullmatch(pattern, embedded), (env, name)
            compile(embedded, f"{name} ({env})", "exec")
        agent = json.loads(heredoc(script, "JSON"))
        groups = {f["log_group_name"] for f in agent["logs"]["logs_collected"]["files"]["collect_list"]}
        assert groups == {f"/mlopspltf-{env}/mlflow/{p}" for p in ("server", "nginx", "system")}
        auth = synth.env(env).settings.mlflow.auth
        launcher = heredoc(script, "EOF_LAUNCH_PY")
        assert f'ADMIN_USERNAME = "{auth.admin_username}"' in launcher
        assert f'DEFAULT_PERMISSION = "{auth.default_permission}"' in launcher


def test_mlflow_and_its_dependencies_are_pinned(scripts: dict[str, str], synth: Synthesized) -> None:
    for env, script in scripts.items():
        version = synth.env(env).settings.mlflow.mlflow_version
        # Every package of the venv is pinned by the shipped constraints, MLflow included (fix 5).
        assert heredoc(script, "PINS").splitlines() == list(CONSTRAINTS)
        assert f"mlflow=={version}" in CONSTRAINTS
        # The sign-in app's extra (mlflow[auth]: Flask-WTF) is pinned too.
        assert any(pin.startswith("Flask-WTF==") for pin in CONSTRAINTS)
        install = re.search(r"/opt/mlflow/venv/bin/pip install (.*)\\\n(.*)\n", script)
        assert install is not None
        assert "--constraint /opt/mlflow/constraints.txt" in install.group(1)
        expected = [f'"{user_data.PIP_REQUIREMENTS[0]}=={version}"', *user_data.PIP_REQUIREMENTS[1:]]
        assert install.group(2).split() == expected


def test_user_data_is_gzipped_and_fits_a_launch_template(scripts: dict[str, str], synth: Synthesized) -> None:
    # EC2 takes at most 16 KB of user data, base64-encoded; cloud-init gunzips it.
    for env, script in scripts.items():
        encoded = synth.resources(f"mlflow-{env}", "aws_launch_template")["mlflow"]["user_data"]
        assert len(encoded) <= user_data.USER_DATA_LIMIT, (env, len(encoded))
        raw = base64.b64decode(encoded)
        assert raw[:2] == b"\x1f\x8b" and gzip.decompress(raw).decode() == script
        assert encode(script) == encoded  # the same text, the same bytes
    with pytest.raises(ValueError, match="EC2 takes 16384"):
        encode(os.urandom(13000).hex())


def test_served_behind_nginx(scripts: dict[str, str]) -> None:
    for script in scripts.values():
        nginx = heredoc(script, "NGINX")
        assert "location = /health" in nginx and "proxy_pass http://127.0.0.1:5000/health;" in nginx
        assert "amazon-cloudwatch-agent-ctl -a fetch-config" in script
        # No timer watching the master secret: MLflow never holds it (rotation needs no restart).
        assert "systemctl enable --now mlflow.service nginx.service" in script
        unit = heredoc(script, "UNIT")
        # A schema of another release: launch.py exits 3, and systemd does not start it again.
        assert "Restart=always" in unit and "RestartPreventExitStatus=3" in unit


@dataclass
class Launched:
    argv: list[str]
    env: dict[str, str]
    boots: list[tuple[str, str, str, str]] = field(
        default_factory=list
    )  # mlflow_schemas.boot's URIs, command, admin
    clients: list[str] = field(default_factory=list)  # boto3 services, in order
    secret_ids: list[str] = field(default_factory=list)  # what was read from Secrets Manager
    health: list[dict[str, Any]] = field(default_factory=list)  # autoscaling.set_instance_health's arguments
    files: dict[str, str] = field(default_factory=dict)
    admins: list[tuple[str, ...]] = field(default_factory=list)  # the auth store's calls
    exit: int | None = None

    def option(self, name: str) -> str:
        return self.argv[self.argv.index(name) + 1]


class MismatchError(Exception):
    pass


SECRETS = {"redis-secret": "tok", "admin-secret": "admin-pw-0123456789", "flask-secret": "flask-key"}


def launch(
    script: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    params: dict[str, str],
    *,
    admin_exists: bool = False,
    mismatch: str = "",
) -> Launched:
    """Run the rendered launcher with fake AWS, database and MLflow modules; what it would exec."""
    done = Launched([], {})

    class Client:
        # boto3's keyword names.
        def get_parameter(self, Name: str) -> dict[str, Any]:  # noqa: N803
            return {"Parameter": {"Value": params[Name.rsplit("/", 1)[1]]}}

        def get_secret_value(self, SecretId: str, VersionStage: str) -> dict[str, Any]:  # noqa: N803
            assert VersionStage == "AWSCURRENT"
            done.secret_ids.append(SecretId)
            return {"SecretString": SECRETS[SecretId], "VersionId": "v1"}

        def set_instance_health(self, **kwargs: Any) -> None:
            done.health.append(kwargs)

    def client(service: str, region_name: str) -> Client:
        done.clients.append(service)
        return Client()

    def boot(tracking: str, auth: str, command: str, admin: str) -> tuple[str, bool]:
        done.boots.append((tracking, auth, command, admin))
        if mismatch:
            raise MismatchError(mismatch)
        return "schemas verified", admin_exists

    class Response:
        def __init__(self, body: str) -> None:
            self.body = body

        def __enter__(self) -> Response:
            return self

        def __exit__(self, *exc: object) -> None:
            pass

        def read(self) -> bytes:
            return self.body.encode()

    def urlopen(request: Any, timeout: float) -> Response:
        return Response("imds-token" if request.get_method() == "PUT" else "i-0123456789abcdef0")

    def execve(path: str, argv: list[str], env: dict[str, str]) -> None:
        done.argv[:], done.env = argv, env

    schemas = SimpleNamespace(boot=boot, SchemaMismatchError=MismatchError, MISMATCH_EXIT=3)
    auth = SimpleNamespace(
        store=SimpleNamespace(init_db=lambda uri: done.admins.append(("init_db", uri))),
        create_admin_user=lambda name, password: done.admins.append(("create_admin_user", name, password)),
    )
    for name, module in {
        "boto3": SimpleNamespace(client=client),
        "mlflow_schemas": schemas,
        "mlflow.server.auth": auth,
        "sqlalchemy": SimpleNamespace(
            create_engine=lambda uri, poolclass: uri, pool=SimpleNamespace(NullPool=None)
        ),
    }.items():
        monkeypatch.setitem(sys.modules, name, module)
    monkeypatch.setattr(os, "execve", execve)
    monkeypatch.setattr("urllib.request.urlopen", urlopen)
    real_open = open

    def fake_open(path: str, *args: Any) -> Any:
        done.files[str(path)] = ""
        return real_open(tmp_path / Path(path).name, *args)

    namespace = {"__name__": "__main__", "open": fake_open}
    try:
        exec(compile(heredoc(script, "EOF_LAUNCH_PY"), "launch.py", "exec"), namespace)
    except SystemExit as exc:
        done.exit = int(exc.code or 0)
    for path in done.files:
        done.files[path] = (tmp_path / Path(path).name).read_text()
    return done


PARAMS = {
    "db_host": "db.internal",
    "db_port": "3306",
    "db_name": "mlflow",
    "db_auth_name": "mlflow_auth",
    "db_user": "mlflow",
    "artifacts_destination": "s3://bucket/artifacts",
    "alb_dns_name": "mlopspltf-dev-mlflow-1.eu-west-1.elb.amazonaws.com",
    "admin_password_secret_arn": "admin-secret",
    "flask_secret_key_secret_arn": "flask-secret",
    "redis_host": "redis.internal",
    "redis_port": "6379",
    "redis_auth_secret_arn": "redis-secret",
}


def test_launcher_allows_the_public_hosts_as_hosts_and_https_origins(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    done = launch(render(VALUES), monkeypatch, tmp_path, PARAMS)
    alb = PARAMS["alb_dns_name"]
    assert done.option("--allowed-hosts").split(",") == ["mlflow.example.com", alb, "localhost", "127.0.0.1"]
    # The same list, as browser origins (fix 1): POSTs from the UI carry Origin; HTTPS only.
    assert done.option("--cors-allowed-origins").split(",") == [
        "https://mlflow.example.com",
        f"https://{alb}",
    ]
    assert (done.option("--host"), done.option("--workers")) == ("127.0.0.1", "2")
    assert done.env["MLFLOW_DISABLE_TELEMETRY"] == "true"


def test_launcher_starts_mlflow_with_sign_in(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    done = launch(render(VALUES), monkeypatch, tmp_path, PARAMS)
    # mlflow server, through mlflow_signin (the basic-auth app with two per-request lookups kept).
    assert done.argv[:4] == ["/opt/mlflow/venv/bin/python", "-m", "mlflow_signin", "server"]
    assert done.option("--app-name") == "basic-auth"
    assert done.env["MLFLOW_AUTH_CONFIG_PATH"] == "/opt/mlflow/basic_auth.ini"
    ini = done.files["/opt/mlflow/basic_auth.ini"]
    settings = dict(line.split(" = ", 1) for line in ini.splitlines()[1:])
    assert ini.startswith("[mlflow]\n")
    assert settings["default_permission"] == "NO_PERMISSIONS"
    assert settings["admin_username"] == "mlops-root"
    assert settings["authorization_function"] == "mlflow.server.auth:authenticate_request_basic_auth"
    # A verified sign-in is cached (scrypt costs ~0.2 s a check, 2-6 checks a request).
    assert int(settings["auth_cache_ttl_seconds"]) > 0
    # The gate may allow on grants read this long ago (mlflow_signin), shorter than a password's.
    grant_seconds = int(done.env["MLFLOW_SIGNIN_GRANT_CACHE_SECONDS"])
    assert 0 < grant_seconds < int(settings["auth_cache_ttl_seconds"])
    # No secret in the file; MLflow reads it with interpolation: % doubled.
    assert settings["database_uri"] == done.boots[0][1].replace("%", "%%")
    assert not any(value in ini for value in SECRETS.values())
    assert done.env["MLFLOW_FLASK_SERVER_SECRET_KEY"] == "flask-key"


def test_the_admin_password_is_read_only_while_there_is_no_admin(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    first = launch(render(VALUES), monkeypatch, tmp_path, PARAMS, admin_exists=False)
    # Created by the launcher with MLflow's own function: the server never gets the password.
    assert first.admins == [
        ("init_db", first.boots[0][1]),
        ("create_admin_user", "mlops-root", "admin-pw-0123456789"),
    ]
    assert "MLFLOW_AUTH_ADMIN_PASSWORD" not in first.env
    assert "admin-pw-0123456789" not in json.dumps(first.env)
    later = launch(render(VALUES), monkeypatch, tmp_path, PARAMS, admin_exists=True)
    assert later.admins == []
    assert "admin-secret" not in later.secret_ids
    assert first.boots[0][3] == "mlops-root"


def test_a_schema_of_another_release_stops_the_start_and_reports_unhealthy(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    done = launch(
        render(VALUES), monkeypatch, tmp_path, PARAMS, mismatch="the tracking schema is MLflow 3.10.1's"
    )
    assert done.exit == 3 and done.argv == []
    assert done.health == [
        {"InstanceId": "i-0123456789abcdef0", "HealthStatus": "Unhealthy", "ShouldRespectGracePeriod": False}
    ]
    err = capsys.readouterr().err
    assert "error: the tracking schema is MLflow 3.10.1's" in err
    # The command that upgrades is named to the schema step.
    assert done.boots[0][2] == "python -m ops mlflow upgrade --env dev"
    assert done.secret_ids == []  # nothing read that the start did not need


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
    with pytest.raises(ValueError, match="no version of flask-wtf"):
        render(replace(VALUES, constraints=tuple(p for p in CONSTRAINTS if not p.startswith("Flask-WTF=="))))
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
        admin_exists=True,
    )
    # Secrets Manager for the sign-in's Flask key and, with the cache, Redis's AUTH token; never
    # for the database (fix 10): it takes IAM tokens.
    assert done.clients == ["ssm", "secretsmanager"]
    assert done.secret_ids == ["flask-secret", *(["redis-secret"] if cache_enabled else [])]


def test_database_uris_name_the_token_plugin_and_no_password(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    done = launch(render(VALUES), monkeypatch, tmp_path, PARAMS)
    tracking, auth, _, _ = done.boots[0]
    assert done.env["MLFLOW_BACKEND_STORE_URI"] == tracking
    for uri, database in ((tracking, "/mlflow"), (auth, "/mlflow_auth")):
        parts = urllib.parse.urlsplit(uri)
        assert (parts.scheme, parts.username, parts.password) == ("mysql+pymysql", "mlflow", None)
        # Host and port from their own settings, once each (RDS's endpoint already holds the port).
        assert (parts.hostname, parts.port, parts.path) == ("db.internal", 3306, database)
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
