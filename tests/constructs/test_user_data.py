"""The MLflow instances' boot script: rendered in Python, checked as the instances receive it."""

from __future__ import annotations

import base64
import json
import re
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest

from constructs_lib import user_data
from constructs_lib.user_data import TEMPLATE, UserDataValues, render
from platform_config.secrets import secret_kind
from tests.conftest import Synthesized, shipped_env_names

BASE_SETTINGS = ("db_host", "db_port", "db_name", "db_secret_arn", "artifacts_destination", "alb_dns_name")
CACHE_SETTINGS = ("redis_host", "redis_port", "redis_auth_secret_arn")
VALUES = UserDataValues(
    region="eu-west-1",
    environment="dev",
    parameter_path="/mlopspltf-dev/mlflow",
    mlflow_version="3.17.2",
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
        "BOTO3_VERSION",
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
        files.append(str(tmp_path / f"{env}-watch.sh"))
        (tmp_path / f"{env}-watch.sh").write_text(heredoc(script, "SH"))
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
        agent = json.loads(heredoc(script, "JSON"))
        groups = {f["log_group_name"] for f in agent["logs"]["logs_collected"]["files"]["collect_list"]}
        assert groups == {f"/mlopspltf-{env}/mlflow/{p}" for p in ("server", "nginx", "system")}


def test_mlflow_is_pinned_and_served_behind_nginx(scripts: dict[str, str], synth: Synthesized) -> None:
    for env, script in scripts.items():
        version = synth.envs[[e.name for e in synth.envs].index(env)].settings.mlflow.mlflow_version
        assert f'"mlflow=={version}"' in script
        assert re.search(r'"pymysql==\d+\.\d+\.\d+" "boto3==\d+\.\d+\.\d+"', script)
        launcher = heredoc(script, "PY")
        assert '"--artifacts-destination", param("artifacts_destination")' in launcher
        assert '"--serve-artifacts"' in launcher and '"--host", "127.0.0.1"' in launcher
        assert 'secrets.get_secret_value(SecretId=param("db_secret_arn"))' in launcher
        nginx = heredoc(script, "NGINX")
        assert "location = /health" in nginx and "proxy_pass http://127.0.0.1:5000/health;" in nginx
        assert "amazon-cloudwatch-agent-ctl -a fetch-config" in script
        assert "systemctl enable --now mlflow.service mlflow-secret-watch.timer nginx.service" in script


def test_database_uri_has_host_and_port_once() -> None:
    launcher = heredoc(render(VALUES), "PY")
    (uri,) = re.findall(r'"(mysql\+pymysql://[^"]*)"', launcher)
    assert uri == "mysql+pymysql://{}:{}@{}:{}/{}?ssl_ca=/opt/mlflow/rds-ca.pem"
    assert 'param("db_host"), param("db_port"), param("db_name")' in launcher
    # Run the URI construction with a hostile password: it must be percent-encoded.
    namespace: dict[str, object] = {}
    exec(
        "import urllib.parse\n" + re.search(r"def quoted\(value\):\n    .*\n", launcher).group(0),  # type: ignore[union-attr]
        namespace,
    )
    quoted = namespace["quoted"]
    assert callable(quoted)
    built = uri.format(quoted("admin"), quoted("p@ss:w/rd?#"), "db.example", "3306", "mlflow")
    assert built.count("@") == 1 and built.count(":3306") == 1
    assert built.startswith("mysql+pymysql://admin:p%40ss%3Aw%2Frd%3F%23@db.example:3306/mlflow?")


def test_cache_switch_reaches_the_launcher() -> None:
    on = render(VALUES)
    off = render(replace(VALUES, cache_enabled=False, parameters=BASE_SETTINGS))
    assert 'CACHE_ENABLED = "true" == "true"' in on and "redis_auth_secret_arn" in on.split("cat >")[0]
    assert 'CACHE_ENABLED = "false" == "true"' in off and "redis_host" not in off.split("cat >")[0]
    assert 'env["MLFLOW_REDIS_URL"] = "rediss://' in heredoc(on, "PY")


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
