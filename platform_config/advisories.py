"""Settings that load but need an operator's attention soon: printed as ``warning: file: key:
problem`` by ``main.py``, ``ops synth`` and ``ops plan`` (which go on), never an error.

Today one kind: a database engine version accepted only as the source of an upgrade (MySQL 8.0,
past RDS standard support and billed for Extended Support). A new environment cannot be created on
it, but an existing database must keep saying what it runs until it is upgraded, or the next plan
would change its major version.
"""

from __future__ import annotations

from collections.abc import Sequence

from platform_config.loader import Environment
from platform_config.mlflow import MYSQL_MAJOR, MYSQL_UPGRADE_RUNBOOK


def find(env: Environment) -> list[str]:
    database = env.settings.mlflow.database
    if not database.is_upgrade_source:
        return []
    return [
        f"{env.tfvars_file}: mlflow.database.engine_version: MySQL {database.engine_version} is past RDS "
        "standard support (Extended Support is charged per vCPU-hour) and is accepted only for an existing "
        f"database until its upgrade: `python -m ops db upgrade-engine --env {env.name} --to {MYSQL_MAJOR}` "
        f"({MYSQL_UPGRADE_RUNBOOK})"
    ]


def lines(envs: Sequence[Environment]) -> list[str]:
    return [line for env in envs for line in find(env)]
