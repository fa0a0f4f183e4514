"""The substitution table covers the synthesized boot script of every shipped environment exactly,
and a boot script it does not cover fails loudly."""

from __future__ import annotations

from pathlib import Path

import pytest

from constructs_lib import user_data
from constructs_lib.db_users_lambda import handler
from platform_config.mlflow_constraints import CONSTRAINTS
from rehearsal import install, substitutions
from tests.conftest import Synthesized, shipped_env_names

pytestmark = pytest.mark.rehearsal

CTX = substitutions.Context(Path("/r/root"), Path("/r/venv"), Path("/r/ca.pem"), 15000, 18080)


def script(synth: Synthesized, env: str) -> str:
    return user_data.decode(synth.resources(f"mlflow-{env}", "aws_launch_template")["mlflow"]["user_data"])


@pytest.mark.parametrize("env", shipped_env_names())
def test_every_rule_matches_the_synthesized_script(synth: Synthesized, env: str) -> None:
    out = substitutions.apply(script(synth, env), CTX)
    assert "listen 127.0.0.1:18080 default_server;" in out
    assert 'PYTHON = "/r/venv/bin/python"' in out
    assert "printf '%s\\n' mlflow.service nginx.service > /r/root/run/enable-now" in out
    # The token plugin goes into the shared venv, as the boot script installs it into its own.
    assert "SITE=$(/r/venv/bin/python -c " in out


@pytest.mark.parametrize("env", shipped_env_names())
def test_the_venv_gets_the_boot_scripts_packages_and_constraints(synth: Synthesized, env: str) -> None:
    wanted = install.Requirements.of(script(synth, env))
    version = synth.env(env).settings.mlflow.mlflow_version
    assert wanted.packages == (f"mlflow[auth]=={version}", "pymysql", "boto3", "redis")
    assert wanted.constraints == CONSTRAINTS


def test_an_uncovered_service_manager_call_fails(synth: Synthesized) -> None:
    changed = script(synth, "dev") + "systemctl start extra.service\n"
    with pytest.raises(substitutions.SubstitutionError, match=r"systemctl start extra\.service"):
        substitutions.apply(changed, CTX)


def test_a_rule_that_no_longer_matches_is_named(synth: Synthesized) -> None:
    changed = script(synth, "dev").replace("dnf install -y", "yum install -y")
    with pytest.raises(substitutions.SubstitutionError, match="dnf install"):
        substitutions.apply(changed, CTX)


def test_the_lambda_runs_with_only_its_authentication_clause_replaced() -> None:
    shipped = handler.statements("mlflow", ("mlflow", "mlflow_auth"), handler.IAM_AUTHENTICATION)
    rehearsed = handler.statements(
        "mlflow", ("mlflow", "mlflow_auth"), substitutions.db_user_authentication("svc")
    )
    changed = [(a, b) for a, b in zip(shipped, rehearsed, strict=True) if a != b]
    assert len(changed) == 2  # CREATE USER and ALTER USER; the GRANT is the same
    for a, b in changed:
        assert b.replace("IDENTIFIED VIA pam USING 'svc'", handler.IAM_AUTHENTICATION) == a
